/*
 * Fast OTLP wire decoding for the flusher: ExportTraceServiceRequest /
 * ExportLogsServiceRequest bytes -> plain Python tuples, dicts and lists.
 *
 * Optional accelerator. collector/wire.py holds the pure-Python reference that
 * produces exactly the same structures from the protobuf message; tests compare
 * the two on generated requests. Any error here makes the caller fall back to it.
 *
 * AnyValue mapping (collector/values.py): string, bool, int, double as themselves
 * (non-finite doubles as "NaN"/"Infinity"/"-Infinity"), array -> list,
 * kvlist -> dict (last key wins), bytes -> base64 str, unset -> None.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64
#define TAG(field, wire) (((uint64_t)(field) << 3) | (uint64_t)(wire))

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Buf;

static PyObject *DecodeError;

static int fail(const char *msg) {
    PyErr_SetString(DecodeError, msg);
    return -1;
}

static int read_varint(Buf *b, uint64_t *out) {
    uint64_t v = 0;
    int shift = 0;
    while (b->p < b->end && shift < 64) {
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
        shift += 7;
    }
    return fail("truncated or overlong varint");
}

static int read_fixed64(Buf *b, uint64_t *out) {
    if (b->end - b->p < 8) return fail("truncated fixed64");
    memcpy(out, b->p, 8); /* little-endian hosts only (checked at module init) */
    b->p += 8;
    return 0;
}

static int read_fixed32(Buf *b, uint32_t *out) {
    if (b->end - b->p < 4) return fail("truncated fixed32");
    memcpy(out, b->p, 4);
    b->p += 4;
    return 0;
}

static int read_bytes(Buf *b, Buf *out) {
    uint64_t len;
    if (read_varint(b, &len) < 0) return -1;
    if (len > (uint64_t)(b->end - b->p)) return fail("truncated length-delimited field");
    out->p = b->p;
    out->end = b->p + len;
    b->p += len;
    return 0;
}

static int skip_field(Buf *b, int wire) {
    uint64_t v;
    Buf tmp;
    switch (wire) {
        case 0: return read_varint(b, &v);
        case 1: return read_fixed64(b, &v);
        case 2: return read_bytes(b, &tmp);
        case 5: {
            uint32_t x;
            return read_fixed32(b, &x);
        }
        default: return fail("unsupported wire type");
    }
}

/* Read a tag; returns 1 with field/wire set, 0 at end of buffer, -1 on error. */
static int next_tag(Buf *b, uint32_t *field, int *wire) {
    uint64_t tag;
    if (b->p >= b->end) return 0;
    if (read_varint(b, &tag) < 0) return -1;
    if (tag > 0xFFFFFFFFu || (tag >> 3) == 0 || (tag >> 3) > 536870911u) return fail("invalid field number");
    *field = (uint32_t)(tag >> 3);
    *wire = (int)(tag & 7);
    return 1;
}

static PyObject *str_from(Buf s) {
    return PyUnicode_DecodeUTF8((const char *)s.p, s.end - s.p, "strict");
}

/* Attribute keys, and many short values, repeat from span to span: a small direct-mapped
 * cache of ASCII strings returns the same str object (hash already computed) instead of
 * decoding a new one. Bounded (STR_CACHE_SIZE entries of at most STR_CACHE_MAX_LEN bytes),
 * so keys a sender invents only churn it. Protected by the GIL like everything here. */
#define STR_CACHE_SIZE 4096
#define STR_CACHE_MAX_LEN 48
static PyObject *str_cache[STR_CACHE_SIZE];

static PyObject *cached_str_from(Buf s) {
    Py_ssize_t n = s.end - s.p;
    if (n == 0 || n > STR_CACHE_MAX_LEN) return str_from(s);
    uint32_t h = 2166136261u;
    for (const uint8_t *q = s.p; q < s.end; q++) {
        if (*q & 0x80) return str_from(s); /* ASCII only: then the bytes are the str's data */
        h = (h ^ *q) * 16777619u;
    }
    PyObject **slot = &str_cache[(h ^ (h >> 16)) & (STR_CACHE_SIZE - 1)];
    PyObject *hit = *slot;
    if (hit && PyUnicode_GET_LENGTH(hit) == n && memcmp(PyUnicode_1BYTE_DATA(hit), s.p, n) == 0) {
        Py_INCREF(hit);
        return hit;
    }
    PyObject *str = str_from(s);
    if (!str) return NULL;
    if (PyObject_Hash(str) == -1) {
        Py_DECREF(str);
        return NULL;
    }
    Py_INCREF(str);
    Py_XSETREF(*slot, str);
    return str;
}

static PyObject *bytes_from(Buf s) { return PyBytes_FromStringAndSize((const char *)s.p, s.end - s.p); }

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static PyObject *base64_from(Buf s) {
    Py_ssize_t n = s.end - s.p;
    Py_ssize_t out_len = 4 * ((n + 2) / 3);
    PyObject *out = PyUnicode_New(out_len, 127);
    if (!out) return NULL;
    Py_UCS1 *o = PyUnicode_1BYTE_DATA(out);
    Py_ssize_t i = 0, j = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (s.p[i] << 16) | (s.p[i + 1] << 8) | s.p[i + 2];
        o[j++] = B64[(v >> 18) & 63];
        o[j++] = B64[(v >> 12) & 63];
        o[j++] = B64[(v >> 6) & 63];
        o[j++] = B64[v & 63];
    }
    if (i < n) {
        uint32_t v = s.p[i] << 16;
        if (i + 1 < n) v |= s.p[i + 1] << 8;
        o[j++] = B64[(v >> 18) & 63];
        o[j++] = B64[(v >> 12) & 63];
        o[j++] = (i + 1 < n) ? B64[(v >> 6) & 63] : '=';
        o[j++] = '=';
    }
    return out;
}

static PyObject *decode_kvlist(Buf b, int depth);

/* AnyValue; oneof: the last value field present wins, as in protobuf. */
static PyObject *decode_any(Buf b, int depth) {
    uint32_t field, last = 0;
    int wire, r;
    PyObject *result = NULL;
    if (depth > MAX_DEPTH) {
        fail("AnyValue nested too deeply");
        return NULL;
    }
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        PyObject *v = NULL;
        Buf s;
        uint64_t x;
        if (field == 1 && wire == 2) { /* string_value */
            if (read_bytes(&b, &s) < 0) goto error;
            v = cached_str_from(s);
        } else if (field == 2 && wire == 0) { /* bool_value */
            if (read_varint(&b, &x) < 0) goto error;
            v = PyBool_FromLong(x != 0);
        } else if (field == 3 && wire == 0) { /* int_value */
            if (read_varint(&b, &x) < 0) goto error;
            v = PyLong_FromLongLong((long long)(int64_t)x);
        } else if (field == 4 && wire == 1) { /* double_value */
            double d;
            if (read_fixed64(&b, &x) < 0) goto error;
            memcpy(&d, &x, 8);
            if (isnan(d)) v = PyUnicode_FromString("NaN");
            else if (isinf(d)) v = PyUnicode_FromString(d > 0 ? "Infinity" : "-Infinity");
            else v = PyFloat_FromDouble(d);
        } else if (field == 5 && wire == 2) { /* array_value: ArrayValue{repeated AnyValue values = 1} */
            uint32_t f2;
            int w2, r2;
            if (last == 5) { fail("non-canonical: repeated array_value (merge)"); goto error; }
            if (read_bytes(&b, &s) < 0) goto error;
            v = PyList_New(0);
            if (!v) goto error;
            while ((r2 = next_tag(&s, &f2, &w2)) == 1) {
                if (f2 == 1 && w2 == 2) {
                    Buf item;
                    PyObject *iv;
                    if (read_bytes(&s, &item) < 0) goto error_v;
                    iv = decode_any(item, depth + 1);
                    if (!iv || PyList_Append(v, iv) < 0) {
                        Py_XDECREF(iv);
                        goto error_v;
                    }
                    Py_DECREF(iv);
                } else if (skip_field(&s, w2) < 0) {
                    goto error_v;
                }
            }
            if (r2 < 0) goto error_v;
        } else if (field == 6 && wire == 2) { /* kvlist_value */
            if (last == 6) { fail("non-canonical: repeated kvlist_value (merge)"); goto error; }
            if (read_bytes(&b, &s) < 0) goto error;
            v = decode_kvlist(s, depth + 1);
        } else if (field == 7 && wire == 2) { /* bytes_value */
            if (read_bytes(&b, &s) < 0) goto error;
            v = base64_from(s);
        } else {
            if (skip_field(&b, wire) < 0) goto error;
            continue;
        }
        if (!v) goto error;
        Py_XSETREF(result, v);
        last = field;
        continue;
    error_v:
        Py_XDECREF(v);
        goto error;
    }
    if (r < 0) goto error;
    if (!result) Py_RETURN_NONE;
    return result;
error:
    Py_XDECREF(result);
    return NULL;
}

/* KeyValue{string key = 1; AnyValue value = 2} into dict d (a missing value is None). */
static int decode_kv_into(Buf b, PyObject *d, int depth) {
    uint32_t field;
    int wire, r;
    PyObject *key = NULL, *value = NULL;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        Buf s;
        if (field == 1 && wire == 2) {
            if (read_bytes(&b, &s) < 0) goto error;
            Py_XSETREF(key, cached_str_from(s));
            if (!key) goto error;
        } else if (field == 2 && wire == 2) {
            if (value) { fail("non-canonical: repeated KeyValue.value (merge)"); goto error; }
            if (read_bytes(&b, &s) < 0) goto error;
            Py_XSETREF(value, decode_any(s, depth));
            if (!value) goto error;
        } else if (skip_field(&b, wire) < 0) {
            goto error;
        }
    }
    if (r < 0) goto error;
    if (!key) key = PyUnicode_FromStringAndSize("", 0);
    if (!value) {
        value = Py_None;
        Py_INCREF(value);
    }
    if (!key || PyDict_SetItem(d, key, value) < 0) goto error;
    Py_DECREF(key);
    Py_DECREF(value);
    return 0;
error:
    Py_XDECREF(key);
    Py_XDECREF(value);
    return -1;
}

/* KeyValueList{repeated KeyValue values = 1} */
static PyObject *decode_kvlist(Buf b, int depth) {
    uint32_t field;
    int wire, r;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        if (field == 1 && wire == 2) {
            Buf s;
            if (read_bytes(&b, &s) < 0 || decode_kv_into(s, d, depth) < 0) goto error;
        } else if (skip_field(&b, wire) < 0) {
            goto error;
        }
    }
    if (r < 0) goto error;
    return d;
error:
    Py_DECREF(d);
    return NULL;
}

/* --- spans ------------------------------------------------------------------------- */

/* Span.Event -> (time_unix_nano, name, attributes, dropped_attributes_count) */
static PyObject *decode_event(Buf b) {
    uint32_t field;
    int wire, r;
    uint64_t time = 0, dropped = 0;
    PyObject *name = NULL, *attrs = PyDict_New();
    if (!attrs) return NULL;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        Buf s;
        if (field == 1 && wire == 1) {
            if (read_fixed64(&b, &time) < 0) goto error;
        } else if (field == 2 && wire == 2) {
            if (read_bytes(&b, &s) < 0) goto error;
            Py_XSETREF(name, str_from(s));
            if (!name) goto error;
        } else if (field == 3 && wire == 2) {
            if (read_bytes(&b, &s) < 0 || decode_kv_into(s, attrs, 0) < 0) goto error;
        } else if (field == 4 && wire == 0) {
            if (read_varint(&b, &dropped) < 0) goto error;
        } else if (skip_field(&b, wire) < 0) {
            goto error;
        }
    }
    if (r < 0) goto error;
    if (!name) name = PyUnicode_FromStringAndSize("", 0);
    if (!name) goto error;
    return Py_BuildValue("(KNNK)", (unsigned long long)time, name, attrs, (unsigned long long)(uint32_t)dropped);
error:
    Py_XDECREF(name);
    Py_DECREF(attrs);
    return NULL;
}

/* Span.Link -> (trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags) */
static PyObject *decode_link(Buf b) {
    uint32_t field;
    int wire, r;
    uint64_t dropped = 0;
    uint32_t flags = 0;
    Buf trace_id = {b.p, b.p}, span_id = {b.p, b.p}, state = {b.p, b.p};
    PyObject *attrs = PyDict_New();
    if (!attrs) return NULL;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        Buf s;
        if (field == 1 && wire == 2) {
            if (read_bytes(&b, &trace_id) < 0) goto error;
        } else if (field == 2 && wire == 2) {
            if (read_bytes(&b, &span_id) < 0) goto error;
        } else if (field == 3 && wire == 2) {
            if (read_bytes(&b, &state) < 0) goto error;
        } else if (field == 4 && wire == 2) {
            if (read_bytes(&b, &s) < 0 || decode_kv_into(s, attrs, 0) < 0) goto error;
        } else if (field == 5 && wire == 0) {
            if (read_varint(&b, &dropped) < 0) goto error;
        } else if (field == 6 && wire == 5) {
            if (read_fixed32(&b, &flags) < 0) goto error;
        } else if (skip_field(&b, wire) < 0) {
            goto error;
        }
    }
    if (r < 0) goto error;
    return Py_BuildValue("(NNNNKK)", bytes_from(trace_id), bytes_from(span_id), str_from(state), attrs,
                         (unsigned long long)(uint32_t)dropped, (unsigned long long)flags);
error:
    Py_DECREF(attrs);
    return NULL;
}

/* Span -> (trace_id, span_id, trace_state, parent_span_id, flags, name, kind, start, end,
 *          attributes, dropped_attributes, events, dropped_events, links, dropped_links,
 *          status_message, status_code) */
static PyObject *decode_span(Buf b) {
    uint32_t field;
    int wire, r;
    uint64_t start = 0, end = 0, kind = 0, dropped_a = 0, dropped_e = 0, dropped_l = 0, status_code = 0;
    uint32_t flags = 0;
    int seen_status = 0;
    Buf empty = {b.p, b.p};
    Buf trace_id = empty, span_id = empty, state = empty, parent = empty, name = empty, status_msg = empty;
    PyObject *attrs = PyDict_New(), *events = PyList_New(0), *links = PyList_New(0);
    if (!attrs || !events || !links) goto error;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        Buf s;
        PyObject *item;
        switch (TAG(field, wire)) {
            case TAG(1, 2): if (read_bytes(&b, &trace_id) < 0) goto error; break;
            case TAG(2, 2): if (read_bytes(&b, &span_id) < 0) goto error; break;
            case TAG(3, 2): if (read_bytes(&b, &state) < 0) goto error; break;
            case TAG(4, 2): if (read_bytes(&b, &parent) < 0) goto error; break;
            case TAG(5, 2): if (read_bytes(&b, &name) < 0) goto error; break;
            case TAG(6, 0): if (read_varint(&b, &kind) < 0) goto error; break;
            case TAG(7, 1): if (read_fixed64(&b, &start) < 0) goto error; break;
            case TAG(8, 1): if (read_fixed64(&b, &end) < 0) goto error; break;
            case TAG(9, 2):
                if (read_bytes(&b, &s) < 0 || decode_kv_into(s, attrs, 0) < 0) goto error;
                break;
            case TAG(10, 0): if (read_varint(&b, &dropped_a) < 0) goto error; break;
            case TAG(11, 2):
                if (read_bytes(&b, &s) < 0) goto error;
                item = decode_event(s);
                if (!item || PyList_Append(events, item) < 0) { Py_XDECREF(item); goto error; }
                Py_DECREF(item);
                break;
            case TAG(12, 0): if (read_varint(&b, &dropped_e) < 0) goto error; break;
            case TAG(13, 2):
                if (read_bytes(&b, &s) < 0) goto error;
                item = decode_link(s);
                if (!item || PyList_Append(links, item) < 0) { Py_XDECREF(item); goto error; }
                Py_DECREF(item);
                break;
            case TAG(14, 0): if (read_varint(&b, &dropped_l) < 0) goto error; break;
            case TAG(15, 2): { /* Status{string message = 2; StatusCode code = 3} */
                uint32_t f2;
                int w2, r2;
                if (seen_status++) { fail("non-canonical: repeated Span.status (merge)"); goto error; }
                if (read_bytes(&b, &s) < 0) goto error;
                while ((r2 = next_tag(&s, &f2, &w2)) == 1) {
                    if (f2 == 2 && w2 == 2) {
                        if (read_bytes(&s, &status_msg) < 0) goto error;
                    } else if (f2 == 3 && w2 == 0) {
                        if (read_varint(&s, &status_code) < 0) goto error;
                    } else if (skip_field(&s, w2) < 0) {
                        goto error;
                    }
                }
                if (r2 < 0) goto error;
                break;
            }
            case TAG(16, 5): if (read_fixed32(&b, &flags) < 0) goto error; break;
            default: if (skip_field(&b, wire) < 0) goto error;
        }
    }
    if (r < 0) goto error;
    return Py_BuildValue("(NNNNKNLKKNKNKNKNL)", bytes_from(trace_id), bytes_from(span_id), str_from(state),
                         bytes_from(parent), (unsigned long long)flags, str_from(name), (long long)(int32_t)kind,
                         (unsigned long long)start, (unsigned long long)end, attrs,
                         (unsigned long long)(uint32_t)dropped_a, events, (unsigned long long)(uint32_t)dropped_e,
                         links, (unsigned long long)(uint32_t)dropped_l, str_from(status_msg),
                         (long long)(int32_t)status_code);
error:
    Py_XDECREF(attrs);
    Py_XDECREF(events);
    Py_XDECREF(links);
    return NULL;
}

/* InstrumentationScope -> fills name, version, attrs */
static int decode_scope(Buf b, Buf *name, Buf *version, PyObject *attrs) {
    uint32_t field;
    int wire, r;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        Buf s;
        if (field == 1 && wire == 2) {
            if (read_bytes(&b, name) < 0) return -1;
        } else if (field == 2 && wire == 2) {
            if (read_bytes(&b, version) < 0) return -1;
        } else if (field == 3 && wire == 2) {
            if (read_bytes(&b, &s) < 0 || decode_kv_into(s, attrs, 0) < 0) return -1;
        } else if (skip_field(&b, wire) < 0) {
            return -1;
        }
    }
    return r;
}

/* Resource{repeated KeyValue attributes = 1} -> dict */
static PyObject *decode_resource(Buf b) {
    uint32_t field;
    int wire, r;
    PyObject *attrs = PyDict_New();
    if (!attrs) return NULL;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        Buf s;
        if (field == 1 && wire == 2) {
            if (read_bytes(&b, &s) < 0 || decode_kv_into(s, attrs, 0) < 0) goto error;
        } else if (skip_field(&b, wire) < 0) {
            goto error;
        }
    }
    if (r < 0) goto error;
    return attrs;
error:
    Py_DECREF(attrs);
    return NULL;
}

typedef PyObject *(*item_decoder)(Buf);

/* ScopeX{InstrumentationScope scope = 1; repeated Item items = 2} -> (name, version, attrs, [items]) */
static PyObject *decode_scoped(Buf b, item_decoder decode_item) {
    uint32_t field;
    int wire, r;
    Buf empty = {b.p, b.p};
    Buf name = empty, version = empty;
    int seen_scope = 0;
    PyObject *attrs = PyDict_New(), *items = PyList_New(0);
    if (!attrs || !items) goto error;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        Buf s;
        if (field == 1 && wire == 2) {
            if (seen_scope++) { fail("non-canonical: repeated scope (merge)"); goto error; }
            if (read_bytes(&b, &s) < 0 || decode_scope(s, &name, &version, attrs) < 0) goto error;
        } else if (field == 2 && wire == 2) {
            PyObject *item;
            if (read_bytes(&b, &s) < 0) goto error;
            item = decode_item(s);
            if (!item || PyList_Append(items, item) < 0) { Py_XDECREF(item); goto error; }
            Py_DECREF(item);
        } else if (skip_field(&b, wire) < 0) {
            goto error;
        }
    }
    if (r < 0) goto error;
    return Py_BuildValue("(NNNN)", str_from(name), str_from(version), attrs, items);
error:
    Py_XDECREF(attrs);
    Py_XDECREF(items);
    return NULL;
}

static PyObject *decode_scope_spans(Buf b) { return decode_scoped(b, decode_span); }

/* ResourceX{Resource resource = 1; repeated ScopeX scopes = 2} -> (resource attrs, [scoped]) */
static PyObject *decode_resource_entry(Buf b, item_decoder decode_scope_entry) {
    uint32_t field;
    int wire, r;
    PyObject *attrs = NULL, *scopes = PyList_New(0);
    if (!scopes) return NULL;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        Buf s;
        if (field == 1 && wire == 2) {
            if (attrs) { fail("non-canonical: repeated resource (merge)"); goto error; }
            if (read_bytes(&b, &s) < 0) goto error;
            Py_XSETREF(attrs, decode_resource(s));
            if (!attrs) goto error;
        } else if (field == 2 && wire == 2) {
            PyObject *item;
            if (read_bytes(&b, &s) < 0) goto error;
            item = decode_scope_entry(s);
            if (!item || PyList_Append(scopes, item) < 0) { Py_XDECREF(item); goto error; }
            Py_DECREF(item);
        } else if (skip_field(&b, wire) < 0) {
            goto error;
        }
    }
    if (r < 0) goto error;
    if (!attrs) attrs = PyDict_New();
    if (!attrs) goto error;
    return Py_BuildValue("(NN)", attrs, scopes);
error:
    Py_XDECREF(attrs);
    Py_DECREF(scopes);
    return NULL;
}

static PyObject *decode_resource_spans(Buf b) { return decode_resource_entry(b, decode_scope_spans); }

static PyObject *decode_top(PyObject *arg, item_decoder decode_entry) {
    Py_buffer view;
    uint32_t field;
    int wire, r;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Buf b = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
    PyObject *out = PyList_New(0);
    if (!out) goto done;
    while ((r = next_tag(&b, &field, &wire)) == 1) {
        if (field == 1 && wire == 2) {
            Buf s;
            PyObject *item;
            if (read_bytes(&b, &s) < 0) { r = -1; break; }
            item = decode_entry(s);
            if (!item || PyList_Append(out, item) < 0) { Py_XDECREF(item); r = -1; break; }
            Py_DECREF(item);
        } else if (skip_field(&b, wire) < 0) {
            r = -1;
            break;
        }
    }
    if (r < 0) Py_CLEAR(out);
done:
    PyBuffer_Release(&view);
    return out;
}

static PyObject *py_decode_traces(PyObject *Py_UNUSED(self), PyObject *arg) {
    return decode_top(arg, decode_resource_spans);
}


/* --- attribute helpers for the flusher ---------------------------------------------
 * Each has a pure-Python reference that tests compare it with:
 * split_attrs ~ content.split_content, lookup ~ normalize.fast.lookup_reference.
 */

/* UTF-8 length of a str, lone surrogates as 3 bytes (Python's "surrogatepass"). */
static Py_ssize_t utf8_len(PyObject *s) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), total = 0;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        total += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    }
    return total;
}

/* split_attrs(attrs, key_cache, is_content_key, limit) -> (facts, content)
 * key_cache: {key: bool} memo of is_content_key (consulted first; the function is called on
 * a miss and keeps the memo). A value is content when its key is, or when it is a str
 * (exactly) of more than `limit` UTF-8 bytes. */
static PyObject *py_split_attrs(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyDict_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "split_attrs(attrs: dict, key_cache: dict, is_content_key, limit: int)");
        return NULL;
    }
    PyObject *attrs = args[0], *cache = args[1], *classify = args[2];
    Py_ssize_t limit = PyLong_AsSsize_t(args[3]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    PyObject *facts = PyDict_New(), *content = PyDict_New();
    if (!facts || !content) goto error;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(attrs, &pos, &k, &v)) {
        int is;
        PyObject *hit = PyDict_GetItemWithError(cache, k); /* borrowed */
        if (hit == Py_True) {
            is = 1;
        } else if (hit == Py_False) {
            is = 0;
        } else {
            PyObject *r;
            if (!hit && PyErr_Occurred()) goto error;
            Py_INCREF(k);
            Py_INCREF(v);
            r = hit ? (Py_INCREF(hit), hit) : PyObject_CallOneArg(classify, k);
            is = r ? PyObject_IsTrue(r) : -1;
            Py_XDECREF(r);
            Py_DECREF(k);
            Py_DECREF(v);
            if (is < 0) goto error;
        }
        if (!is && PyUnicode_CheckExact(v)) {
            Py_ssize_t n = PyUnicode_GET_LENGTH(v);
            if (n > limit / 4 && n * 4 > limit) is = n > limit || utf8_len(v) > limit;
        }
        if (PyDict_SetItem(is ? content : facts, k, v) < 0) goto error;
    }
    return Py_BuildValue("(NN)", facts, content);
error:
    Py_XDECREF(facts);
    Py_XDECREF(content);
    return NULL;
}

/* lookup(attrs, rules, to_int) -> tuple, one value per rule (mode, keys):
 *   0 GET        attrs.get(keys[0])
 *   1 GET_STR    _str(attrs.get(keys[0]))
 *   2 FIRST      the first attrs[k] (k in keys) that is not None and != ""
 *   3 FIRST_STR  _str(FIRST)
 *   4 FIRST_INT  the first to_int(attrs[k]) that is not None (exact ints in [0, 2**63) directly)
 * (a key past the 64th of a rule is always read, index or not)
 * with _str(v) = None if v is None else v if isinstance(v, str) else str(v). */
static PyObject *as_str(PyObject *v) {
    if (v == NULL || v == Py_None) Py_RETURN_NONE;
    if (PyUnicode_Check(v)) return Py_NewRef(v);
    return PyObject_Str(v);
}

/* 1 when v != "" (the test _first applies), 0 when not, -1 on error. */
static int non_empty(PyObject *v) {
    if (PyUnicode_CheckExact(v)) return PyUnicode_GET_LENGTH(v) != 0;
    if (PyLong_CheckExact(v) || PyFloat_CheckExact(v) || PyBool_Check(v) || PyList_CheckExact(v) ||
        PyDict_CheckExact(v))
        return 1;
    PyObject *empty = PyUnicode_FromStringAndSize("", 0);
    if (!empty) return -1;
    int r = PyObject_RichCompareBool(v, empty, Py_NE);
    Py_DECREF(empty);
    return r;
}

/* The rule's keys are read only where bit i of `present` is set (all ones: every key). */
static PyObject *lookup_one(PyObject *attrs, long mode, PyObject *keys, PyObject *to_int, uint64_t present) {
    Py_ssize_t nkeys = PyTuple_GET_SIZE(keys);
    if (mode == 0 || mode == 1) {
        PyObject *v = nkeys ? PyDict_GetItemWithError(attrs, PyTuple_GET_ITEM(keys, 0)) : NULL;
        if (!v && PyErr_Occurred()) return NULL;
        if (mode == 1) return as_str(v);
        return Py_NewRef(v ? v : Py_None);
    }
    for (Py_ssize_t i = 0; i < nkeys; i++) {
        if (i < 64 && !(present >> i & 1)) continue;
        PyObject *v = PyDict_GetItemWithError(attrs, PyTuple_GET_ITEM(keys, i));
        if (!v) {
            if (PyErr_Occurred()) return NULL;
            continue;
        }
        if (v == Py_None) continue;
        if (mode == 4) {
            if (PyLong_CheckExact(v)) {
                int overflow;
                long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
                if (x == -1 && PyErr_Occurred()) return NULL;
                if (!overflow && x >= 0) return Py_NewRef(v);
                continue;
            }
            Py_INCREF(v);
            PyObject *r = PyObject_CallOneArg(to_int, v);
            Py_DECREF(v);
            if (!r || r != Py_None) return r;
            Py_DECREF(r);
            continue;
        }
        int ne = non_empty(v);
        if (ne < 0) return NULL;
        if (!ne) continue;
        return mode == 3 ? as_str(v) : Py_NewRef(v);
    }
    Py_RETURN_NONE;
}

/* With an index ({key: (rule << 8 | position, ...)} over every key of `rules`, as
 * normalize.fast.lookup_index builds it), a small attribute dict is walked once, each of its
 * keys looked up in the index, and a rule reads only the keys the span has: a span has far
 * fewer attributes than the rules have keys. The result is the same as without the index. */
#define LOOKUP_MAX_RULES 64

static int index_present(PyObject *attrs, PyObject *index, Py_ssize_t nrules, uint64_t *present) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(attrs, &pos, &key, &value)) {
        PyObject *slots = PyDict_GetItemWithError(index, key);
        if (!slots) {
            if (PyErr_Occurred()) return -1;
            continue;
        }
        if (!PyTuple_Check(slots)) {
            PyErr_SetString(PyExc_TypeError, "a lookup index maps a key to a tuple of ints");
            return -1;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(slots); j++) {
            long slot = PyLong_AsLong(PyTuple_GET_ITEM(slots, j));
            if (slot == -1 && PyErr_Occurred()) return -1;
            long rule = slot >> 8, at = slot & 0xff;
            if (slot < 0 || rule >= nrules || at >= 64) {
                PyErr_SetString(PyExc_ValueError, "a lookup index slot is outside its rules");
                return -1;
            }
            present[rule] |= (uint64_t)1 << at;
        }
    }
    return 0;
}

static PyObject *py_lookup(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if ((nargs != 3 && nargs != 4) || !PyDict_Check(args[0]) || !PyTuple_Check(args[1]) ||
        (nargs == 4 && args[3] != Py_None && !PyDict_Check(args[3]))) {
        PyErr_SetString(PyExc_TypeError, "lookup(attrs: dict, rules: tuple, to_int, index: dict | None = None)");
        return NULL;
    }
    PyObject *attrs = args[0], *rules = args[1];
    PyObject *index = nargs == 4 && args[3] != Py_None ? args[3] : NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(rules);
    uint64_t present[LOOKUP_MAX_RULES];
    int indexed = index != NULL && n <= LOOKUP_MAX_RULES && PyDict_GET_SIZE(attrs) < PyDict_GET_SIZE(index);
    if (indexed) {
        memset(present, 0, sizeof present);
        if (index_present(attrs, index, n, present) < 0) return NULL;
    }
    PyObject *out = PyTuple_New(n);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rule = PyTuple_GET_ITEM(rules, i);
        if (!PyTuple_Check(rule) || PyTuple_GET_SIZE(rule) != 2 || !PyTuple_Check(PyTuple_GET_ITEM(rule, 1))) {
            PyErr_SetString(PyExc_TypeError, "a lookup rule is (mode: int, keys: tuple[str, ...])");
            goto error;
        }
        long mode = PyLong_AsLong(PyTuple_GET_ITEM(rule, 0));
        if (mode == -1 && PyErr_Occurred()) goto error;
        if (mode < 0 || mode > 4) {
            PyErr_SetString(PyExc_ValueError, "unknown lookup mode");
            goto error;
        }
        PyObject *v;
        if (indexed && !present[i]) {
            v = Py_NewRef(Py_None);  /* every mode gives None when none of its keys is there */
        } else {
            v = lookup_one(attrs, mode, PyTuple_GET_ITEM(rule, 1), args[2], indexed ? present[i] : UINT64_MAX);
        }
        if (!v) goto error;
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
error:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"decode_traces", py_decode_traces, METH_O,
     "ExportTraceServiceRequest bytes -> [(resource_attrs, [(scope_name, scope_version, scope_attrs, "
     "[span tuple])])] (see collector/wire.py)."},
    {"split_attrs", (PyCFunction)(void (*)(void))py_split_attrs, METH_FASTCALL,
     "split_attrs(attrs, key_cache, is_content_key, limit) -> (facts, content) (see collector/content.py)."},
    {"lookup", (PyCFunction)(void (*)(void))py_lookup, METH_FASTCALL,
     "lookup(attrs, rules, to_int, index=None) -> tuple of values (see collector/normalize/fast.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_otlp", "Fast OTLP wire decoding.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__otlp(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "_otlp supports little-endian hosts only");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    DecodeError = PyErr_NewException("spanlake.collector._otlp.DecodeError", PyExc_ValueError, NULL);
    if (!DecodeError || PyModule_AddObject(m, "DecodeError", DecodeError) < 0) {
        Py_XDECREF(DecodeError);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
