"""The canary document verify_deployment pushes through the pipeline: small, unique, easy to find."""
from __future__ import annotations

import secrets

from fpdf import FPDF


def canary_marker() -> str:
    """A word no real document contains, so a search for it can only find this canary."""
    return f"canary{secrets.token_hex(6)}"


def canary_pdf(marker: str) -> bytes:
    """A two-page PDF whose text names ``marker`` (unique bytes, so it is never a duplicate upload)."""
    pdf = FPDF(format="Letter")
    pdf.set_title(f"Deployment canary {marker}")
    for page in (1, 2):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 10, f"Deployment canary {marker}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, f"Page {page}. This document verifies a deployment of the document pipeline: it is "
                             f"parsed, split into passages, embedded and searched for the word {marker}, then "
                             "deleted. Deductible, copay and coinsurance appear here so the text looks like a "
                             "policy to every stage.")
    return bytes(pdf.output())
