"""spanlake.dashboard: the Streamlit app."""
