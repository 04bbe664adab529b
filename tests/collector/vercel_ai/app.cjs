// A Vercel AI SDK app, traced by the SDK itself (experimental_telemetry) and exported with
// @opentelemetry/sdk-node to a collector; tests/collector/test_instrumentations_vercel_ai.py runs it:
//
//   NODE_PATH=<cache>/node_modules node app.cjs --url URL --otlp ENDPOINT --protocol proto|json|grpc --project NAME
//
// The packages live in a cache folder that scripts/node-tools fills from package-lock.json here;
// NODE_PATH reaches them from CommonJS (ES modules ignore it), hence .cjs. The model is
// @ai-sdk/openai's chat-completions model pointed at spanlake's fake OpenAI server. Each scenario
// runs under a span `scenario <name>`; stdout gets one JSON object: package versions and, per
// scenario, the trace id.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { parseArgs } = require("node:util");

const { trace } = require("@opentelemetry/api");
const { NodeSDK } = require("@opentelemetry/sdk-node");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { createOpenAI } = require("@ai-sdk/openai");
const { generateText, streamText, generateObject, tool, stepCountIs, APICallError } = require("ai");
const { z } = require("zod");

const MODEL = "gpt-5-nano"; // answered as gpt-5-nano-2025-01-01, which genai-prices prices as gpt-5-nano
const SYSTEM = "You are terse."; // 3 words
const QUESTION = "What is OpenTelemetry in one line?"; // 6 words
const WEATHER = "What is the weather in Paris today?"; // 7 words
const PACKAGES = [
  "ai",
  "@ai-sdk/openai",
  "@opentelemetry/sdk-node",
  "@opentelemetry/exporter-trace-otlp-proto",
  "@opentelemetry/exporter-trace-otlp-http",
  "@opentelemetry/exporter-trace-otlp-grpc",
];

function exporter(protocol, endpoint) {
  if (protocol === "proto") {
    const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");
    return new OTLPTraceExporter({ url: `${endpoint}/v1/traces` });
  }
  if (protocol === "json") {
    const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-http");
    return new OTLPTraceExporter({ url: `${endpoint}/v1/traces` });
  }
  const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-grpc");
  return new OTLPTraceExporter({ url: `http://${endpoint}` });
}

const telemetry = { isEnabled: true };

const SCENARIOS = {
  async chat(openai) {
    // A functionId and metadata, as apps name their calls (the SDK puts them on every span).
    const named = { ...telemetry, functionId: "answer-question", metadata: { "session.id": "s-42" } };
    await generateText({ model: openai.chat(MODEL), system: SYSTEM, prompt: QUESTION, experimental_telemetry: named });
  },
  async stream(openai) {
    const result = streamText({ model: openai.chat(MODEL), system: SYSTEM, prompt: QUESTION, experimental_telemetry: telemetry });
    for await (const _ of result.textStream) {
      // drain the stream
    }
    await result.usage;
  },
  async tools(openai) {
    const getWeather = tool({
      description: "Current weather for a city.",
      inputSchema: z.object({ location: z.string() }),
      execute: async ({ location }) => `Sunny in ${location}`,
    });
    // The model asks for the tool, the SDK runs it, then calls the model again with its result.
    const result = await generateText({
      model: openai.chat(MODEL),
      prompt: WEATHER,
      tools: { get_weather: getWeather },
      stopWhen: stepCountIs(3),
      experimental_telemetry: telemetry,
    });
    if (result.steps.length !== 2) throw new Error(`expected 2 steps, got ${result.steps.length}`);
  },
  async object(openai) {
    const { object } = await generateObject({
      model: openai.chat(MODEL),
      schema: z.object({ answer: z.string() }),
      prompt: QUESTION,
      experimental_telemetry: telemetry,
    });
    if (object.answer !== QUESTION) throw new Error(`unexpected object ${JSON.stringify(object)}`);
  },
  async error(openai) {
    try {
      await generateText({ model: openai.chat("fail-500"), prompt: QUESTION, maxRetries: 0, experimental_telemetry: telemetry });
    } catch (e) {
      if (!APICallError.isInstance(e) || e.statusCode !== 500) throw e;
      return;
    }
    throw new Error("fail-500 did not fail");
  },
};

function versions() {
  const modules = process.env.NODE_PATH.split(path.delimiter)[0];
  const out = { node: process.versions.node };
  for (const name of PACKAGES) {
    out[name] = JSON.parse(fs.readFileSync(path.join(modules, name, "package.json"), "utf8")).version;
  }
  return out;
}

async function main() {
  const { values: args } = parseArgs({
    options: { url: { type: "string" }, otlp: { type: "string" }, protocol: { type: "string" }, project: { type: "string" } },
  });
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ "service.name": `it-vercel-ai-${args.protocol}`, "spanlake.project": args.project }),
    traceExporter: exporter(args.protocol, args.otlp),
  });
  sdk.start();
  const openai = createOpenAI({ baseURL: `${args.url}/v1`, apiKey: "sk-fake" });
  const tracer = trace.getTracer("spanlake.tests");
  const traces = {};
  for (const [name, run] of Object.entries(SCENARIOS)) {
    await tracer.startActiveSpan(`scenario ${name}`, async (span) => {
      traces[name] = span.spanContext().traceId;
      try {
        await run(openai);
      } finally {
        span.end();
      }
    });
  }
  await sdk.shutdown();
  process.stdout.write(JSON.stringify({ versions: versions(), traces }) + "\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
