"""The report: theory and simulation side by side (HTML, PNG, CSV)."""
