"""Generate the project's sample insurance documents (fictional plans and people) as PDFs.

    python samples/generate.py [OUT_DIR]        # default: samples/

Output is deterministic (fixed creation date), so the committed PDFs only change when this does.
Tests import ``build_document`` to make PDFs of any length.
"""
from __future__ import annotations

import datetime
import random
import sys
import textwrap
from pathlib import Path

from fpdf import FPDF

FIXED_DATE = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
PLAN = "Harborview Silver PPO 3500"
INSURER = "Harborview Health Plan, Inc."


class InsurancePDF(FPDF):
    def __init__(self, title: str):
        super().__init__(format="Letter")
        self.doc_title = title
        self.set_creation_date(FIXED_DATE)
        self.set_title(title)
        self.set_author(INSURER)
        self.set_auto_page_break(auto=True, margin=20)
        self.set_margins(20, 20, 20)

    def header(self):
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 6, f"{INSURER} - {self.doc_title}", new_x="LMARGIN", new_y="NEXT")
        self.ln(2)

    def footer(self):
        self.set_y(-15)
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")

    def heading(self, text: str, size: int = 14):
        self.set_font("Helvetica", "B", size)
        self.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def para(self, text: str):
        self.set_font("Helvetica", "", 10)
        self.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(2)

    def bullets(self, items: list[str]):
        self.set_font("Helvetica", "", 10)
        for item in items:
            self.multi_cell(0, 5, f"- {item}", new_x="LMARGIN", new_y="NEXT")
        self.ln(2)

    def table(self, rows: list[list[str]], widths: list[int]):
        self.set_font("Helvetica", "", 9)
        with super().table(col_widths=widths, text_align="LEFT", first_row_as_headings=True) as table:
            for row in rows:
                table.row(row)
        self.ln(3)


def summary_of_benefits() -> InsurancePDF:
    pdf = InsurancePDF("Summary of Benefits and Coverage")
    pdf.add_page()
    pdf.heading(f"SUMMARY OF BENEFITS AND COVERAGE: {PLAN}", 15)
    pdf.para("Coverage Period: 01/01/2025 - 12/31/2025. Coverage for: Individual + Family. Plan Type: PPO. "
             "This Summary of Benefits and Coverage (SBC) document will help you choose a health plan. It shows "
             "how you and the plan would share the cost for covered health care services.")
    pdf.heading("SECTION 1 Important Questions")
    pdf.table([
        ["Important Questions", "Answers", "Why This Matters"],
        ["What is the overall deductible?", "$3,500 individual / $7,000 family in-network; $7,000 / $14,000 "
         "out-of-network", "You must pay all costs up to the deductible amount before this plan begins to pay."],
        ["Are there services covered before you meet your deductible?", "Yes. Preventive care and primary care "
         "visits are covered before you meet your deductible.", "This plan covers some items and services even "
         "if you have not yet met the deductible amount."],
        ["What is the out-of-pocket limit for this plan?", "$8,000 individual / $16,000 family in-network; "
         "$16,000 / $32,000 out-of-network", "The out-of-pocket limit is the most you could pay in a year for "
         "covered services."],
        ["Will you pay less if you use a network provider?", "Yes. See harborview.example/find-a-doctor for a "
         "list of network providers.", "You pay the least if you use a provider in the plan's network."],
        ["Do you need a referral to see a specialist?", "No.", "You can see the specialist you choose without a "
         "referral."],
    ], [45, 60, 65])
    pdf.add_page()
    pdf.heading("SECTION 2 Common Medical Events")
    pdf.table([
        ["Common Medical Event", "Services You May Need", "Network Provider (You will pay the least)",
         "Out-of-Network Provider"],
        ["If you visit a health care provider's office or clinic", "Primary care visit to treat an injury or "
         "illness", "$30 copay/visit, deductible does not apply", "50% coinsurance"],
        ["", "Specialist visit", "$60 copay/visit", "50% coinsurance"],
        ["", "Preventive care/screening/immunization", "No charge", "Not covered"],
        ["If you have a test", "Diagnostic test (x-ray, blood work)", "20% coinsurance", "50% coinsurance"],
        ["", "Imaging (CT/PET scans, MRIs)", "20% coinsurance, prior authorization required", "50% coinsurance"],
        ["If you need drugs to treat your illness or condition", "Generic drugs (Tier 1)", "$15 copay/prescription",
         "Not covered"],
        ["", "Preferred brand drugs (Tier 2)", "$50 copay/prescription", "Not covered"],
        ["", "Specialty drugs (Tier 4)", "30% coinsurance up to $250 per prescription", "Not covered"],
        ["If you need immediate medical attention", "Emergency room care", "$400 copay/visit, then 20% "
         "coinsurance", "$400 copay/visit, then 20% coinsurance"],
        ["", "Urgent care", "$75 copay/visit", "50% coinsurance"],
        ["If you have a hospital stay", "Facility fee (e.g., hospital room)", "20% coinsurance", "50% coinsurance"],
        ["If you are pregnant", "Childbirth/delivery facility services", "20% coinsurance", "50% coinsurance"],
    ], [38, 42, 50, 40])
    pdf.heading("SECTION 3 Excluded Services and Other Covered Services")
    pdf.para("Services your plan generally does NOT cover: cosmetic surgery, dental care (adult), long-term care, "
             "routine eye care (adult), weight loss programs, and infertility treatment. Other covered services "
             "(limitations may apply): acupuncture up to 12 visits per year, chiropractic care up to 20 visits per "
             "year, hearing aids once every 36 months.")
    return pdf


def explanation_of_benefits() -> InsurancePDF:
    pdf = InsurancePDF("Explanation of Benefits")
    pdf.add_page()
    pdf.heading("EXPLANATION OF BENEFITS - THIS IS NOT A BILL", 15)
    pdf.para("Member: Jordan A. Rivera. Member ID: HVH-204-5581. Claim number: 2025-0412-77813. Provider: "
             "Lakeside Orthopedic Associates. Date of service: 03/14/2025. Statement date: 04/12/2025.")
    pdf.heading("Claim Detail")
    pdf.table([
        ["Service", "Amount Billed", "Allowed Amount", "Plan Paid", "Deductible", "Copay/Coinsurance",
         "You Owe"],
        ["Office visit, specialist", "$310.00", "$182.00", "$122.00", "$0.00", "$60.00", "$60.00"],
        ["X-ray, knee, 3 views", "$240.00", "$96.00", "$0.00", "$96.00", "$0.00", "$96.00"],
        ["MRI, knee without contrast", "$2,150.00", "$840.00", "$0.00", "$840.00", "$0.00", "$840.00"],
        ["Totals", "$2,700.00", "$1,118.00", "$122.00", "$936.00", "$60.00", "$996.00"],
    ], [40, 22, 22, 20, 22, 24, 20])
    pdf.heading("Your Deductible and Out-of-Pocket Progress")
    pdf.para("In-network deductible met so far in 2025: $1,436.00 of $3,500.00. In-network out-of-pocket "
             "maximum met so far: $1,676.00 of $8,000.00. Once you reach the out-of-pocket maximum, the plan "
             "pays 100% of covered in-network services for the rest of the calendar year.")
    pdf.heading("Remark Codes")
    pdf.bullets(["PR-1: Deductible amount. You pay this amount because your deductible has not been met.",
                 "PR-3: Copayment amount for a specialist office visit.",
                 "CO-45: The provider agreed to accept the allowed amount; you are not billed the difference."])
    pdf.para("If you disagree with how this claim was processed, you may file an appeal within 180 days of this "
             "notice. Call Member Services at 1-800-555-0142 (TTY 711).")
    return pdf


def denial_letter() -> InsurancePDF:
    pdf = InsurancePDF("Notice of Adverse Benefit Determination")
    pdf.add_page()
    pdf.heading("NOTICE OF ADVERSE BENEFIT DETERMINATION", 15)
    pdf.para("April 22, 2025. Jordan A. Rivera, 118 Marsh Lane, Portside, OR 97000. Member ID: HVH-204-5581. "
             "Reference number: UM-25-090311.")
    pdf.para("Dear Jordan Rivera, we reviewed the request from Dr. Amelia Chen for arthroscopic knee surgery "
             "(CPT 29881) at Lakeside Surgery Center, planned for May 6, 2025. We have denied this request.")
    pdf.heading("Reason for the Denial")
    pdf.para("The request does not meet our medical necessity criteria for knee arthroscopy. The records we "
             "received do not show that you completed at least 6 weeks of physical therapy or other "
             "conservative treatment before surgery was requested. This decision was made by a board-certified "
             "orthopedic surgeon, using clinical guideline HVH-MP-112 (Knee Arthroscopy).")
    pdf.heading("Your Right to Appeal")
    pdf.para("You or your doctor may ask for an internal appeal within 180 days of the date of this letter. "
             "Send a written appeal to Harborview Appeals Unit, PO Box 4410, Portside, OR 97001, or call "
             "1-800-555-0142. If your health could be seriously harmed by waiting, ask for an expedited "
             "(fast) appeal; we will decide within 72 hours.")
    pdf.para("If we uphold the denial after your internal appeal, you have the right to an external review by an "
             "Independent Review Organization. You must request external review within 4 months of our final "
             "internal appeal decision.")
    pdf.heading("What You Can Do Now")
    pdf.bullets(["Ask your doctor to send physical therapy notes showing 6 weeks of conservative treatment.",
                 "Request a free copy of the guideline and all documents used in this decision.",
                 "Contact the state Department of Insurance consumer line at 1-888-555-0199 for help."])
    return pdf


POLICY_SECTIONS = [
    ("Eligibility and Enrollment", "You may enroll during the annual open enrollment period or within 60 days of a "
     "qualifying life event such as marriage, birth or adoption of a child, or loss of other coverage. "
     "Dependents are eligible until the end of the month in which they turn 26."),
    ("Premiums and Grace Period", "Premiums are due on the first day of each month. If you receive advance "
     "premium tax credits, you have a grace period of three consecutive months; otherwise the grace period is "
     "31 days. Claims incurred in the second and third months of the grace period may be pended."),
    ("Deductibles and Cost Sharing", "The calendar-year deductible is $3,500 per person and $7,000 per family for "
     "in-network services. Copayments for primary care visits are not subject to the deductible. Coinsurance "
     "of 20 percent applies after the deductible for hospital and imaging services."),
    ("Out-of-Pocket Maximum", "The out-of-pocket maximum is $8,000 per person and $16,000 per family in-network. "
     "Deductibles, copayments and coinsurance count toward it; premiums, balance billing and non-covered "
     "services do not."),
    ("Prior Authorization", "Prior authorization is required for inpatient admissions, advanced imaging such as "
     "MRI and CT scans, outpatient surgery, durable medical equipment over $500, and specialty drugs. Your "
     "provider must request it at least 5 business days before the service."),
    ("Emergency Services", "Emergency services are covered in and out of network at the in-network cost share, "
     "without prior authorization. You will not be balance billed for emergency care at an out-of-network "
     "hospital."),
    ("Prescription Drug Coverage", "Drugs are covered according to a four-tier formulary. Tier 1 generics cost $15, "
     "Tier 2 preferred brands $50, Tier 3 non-preferred brands $100, and Tier 4 specialty drugs 30 percent "
     "coinsurance up to $250 per fill. Mail order provides a 90-day supply for two copays."),
    ("Mental Health and Substance Use", "Outpatient therapy visits cost the same as a primary care visit, $30 per "
     "visit. Inpatient behavioral health stays are covered at 20 percent coinsurance after the deductible."),
    ("Maternity and Newborn Care", "Prenatal visits are covered at no charge. Delivery and inpatient maternity "
     "services are covered at 20 percent coinsurance after the deductible. Newborns are covered from birth if "
     "enrolled within 31 days."),
    ("Exclusions", "The plan does not cover cosmetic surgery, experimental or investigational treatments, "
     "services received outside the United States except emergencies, long-term custodial care, or weight loss "
     "surgery unless medically necessary under policy HVH-MP-208."),
    ("Claims and Appeals", "Submit out-of-network claims within 365 days of the service. You may appeal any "
     "denial within 180 days. Urgent appeals are decided within 72 hours and standard appeals within 30 days."),
    ("Coordination of Benefits", "When you have coverage from more than one plan, the plan that covers you as an "
     "employee pays first. For children covered by both parents, the plan of the parent whose birthday falls "
     "earlier in the year pays first."),
]


def build_document(pages: int, *, title: str = "Member Policy", seed: int = 0) -> bytes:
    """A policy-like PDF of exactly ``pages`` pages (for tests and benchmarks)."""
    pdf = InsurancePDF(f"{title} {seed}")
    for number in range(1, pages + 1):
        pdf.add_page()
        name, text = POLICY_SECTIONS[(number + seed) % len(POLICY_SECTIONS)]
        pdf.heading(f"SECTION {number} {name}")
        pdf.para(f"{text} This provision applies to document {seed}, page {number}.")
        pdf.para("Members can call Member Services at 1-800-555-0142 for help understanding this section, "
                 "request materials in another language, or ask for a printed copy at no cost.")
    return bytes(pdf.output())


_SUBTITLES = ["Overview", "Who Qualifies", "What You Pay", "Limits", "How to Ask", "Deadlines", "Examples",
              "Exceptions", "Network Rules", "Your Rights", "Forms", "Definitions"]


def _sentences() -> list[str]:
    """Every sentence of the policy sections: the bank full pages are written from."""
    return [sentence.strip().rstrip(".") + "." for _, text in POLICY_SECTIONS for sentence in text.split(". ") if sentence.strip()]


def build_full_document(pages: int, *, title: str = "Evidence of Coverage", seed: int = 0) -> bytes:
    """A policy-like PDF of exactly ``pages`` pages, each as full as a page of a real Evidence of
    Coverage (~350 words, about two passages; the 232-page EOC in ../shared/corpus has 479 for 232
    pages), for benchmarks: a rate per page means something only if the pages hold what real ones do.
    Sentences are drawn in a seeded order, so no two pages (and no two documents) share a passage."""
    bank = _sentences()
    pdf = InsurancePDF(f"{title} {seed}")
    for number in range(1, pages + 1):
        pdf.add_page()
        draw = random.Random(f"{seed}:{number}")
        name, _ = POLICY_SECTIONS[(number + seed) % len(POLICY_SECTIONS)]
        # varied titles: a title on many pages' edges would read as a running header and be dropped
        pdf.heading(f"SECTION {number} {name}: {draw.choice(_SUBTITLES)}")
        pdf.set_font("Helvetica", "", 10)
        y = pdf.get_y()
        for paragraph in range(4):
            sentences = draw.sample(bank, 5)
            sentences.insert(draw.randrange(6), f"This applies to document {seed}, page {number}, part {paragraph + 1}.")
            # Lines placed one by one: fpdf's own line breaking measures every character in Python,
            # seconds per hundred pages.
            for line in textwrap.wrap(" ".join(sentences), 92):
                pdf.text(pdf.l_margin, y + 4, line)
                y += 5
            y += 3
        if y > pdf.h - pdf.b_margin:
            raise ValueError(f"page {number} of the generated document overflowed")
    return bytes(pdf.output())


def member_policy() -> InsurancePDF:
    pdf = InsurancePDF("Member Policy")
    pdf.add_page()
    pdf.heading(f"CHAPTER 1 Your {PLAN} Policy", 16)
    pdf.para("This policy is a contract between you and Harborview Health Plan. It explains what is covered, "
             "what you pay, and the rules you follow to get care. Keep it with your important papers.")
    for number, (name, text) in enumerate(POLICY_SECTIONS, start=1):
        if number in (5, 9):
            pdf.add_page()
        pdf.heading(f"SECTION {number} {name}")
        pdf.para(text)
        pdf.para("Questions about this section can be answered by Member Services at 1-800-555-0142, Monday "
                 "through Friday, 8 a.m. to 8 p.m.")
    return pdf


SAMPLES = {
    "summary-of-benefits-and-coverage.pdf": summary_of_benefits,
    "explanation-of-benefits.pdf": explanation_of_benefits,
    "denial-letter.pdf": denial_letter,
    "member-policy.pdf": member_policy,
}


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, build in SAMPLES.items():
        build().output(str(out_dir / name))
        print(f"wrote {out_dir / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
