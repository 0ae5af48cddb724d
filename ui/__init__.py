"""Streamlit-only helpers shared by app.py and pages/ (the package `deconfound` never imports Streamlit)."""
