"""Members ask in their own words; policies answer in theirs.

"ER", "checkups while I'm pregnant", "my new baby", "a doctor abroad": the passage that answers says
"emergency room", "prenatal care", "newborn", "outside the United States". Full-text search only
finds words that are there, so the member's words are looked up here and the policy's terms for
them are added to the text query (as phrases, weighted below the member's own words: see
SEARCH_EXPANSION_WEIGHT). The vector ranking embeds the question as asked.

Each entry: the phrases a member uses (matched as whole words, any case) -> the terms policies use.
It is a glossary of health-insurance language in general (the consumer glossaries of the uniform
Summary of Benefits and Coverage are its model), not a list of answers to particular questions.
"""
from __future__ import annotations

import re
from functools import lru_cache

GLOSSARY: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    # what the member pays
    (("out of pocket", "out of my own pocket", "own pocket", "most i could pay", "most i would pay",
      "most i'd pay", "maximum i pay", "cap on what i pay"), ("out-of-pocket maximum", "out-of-pocket limit")),
    (("before the insurance", "before insurance", "before my insurance", "before the plan", "pay myself first",
      "pay first"), ("deductible",)),
    (("copay", "co-pay", "co pay", "flat fee", "fixed fee"), ("copayment",)),
    (("percentage", "percent", "share of the cost", "my share", "portion"), ("coinsurance",)),
    (("monthly payment", "monthly bill", "monthly fee", "pay every month", "each month", "monthly cost"),
     ("premium",)),
    (("late", "miss a payment", "missed a payment", "behind on", "can't pay", "cannot pay"),
     ("grace period", "termination")),
    (("cancel", "cancelled", "canceled", "drop my coverage", "kicked off", "lose my coverage", "coverage ends"),
     ("termination", "cancellation")),
    (("charged", "what they charged", "the price", "sticker price"), ("billed amount", "allowed amount")),
    # claims and paperwork
    (("bill", "bills", "invoice", "receipt", "receipts", "reimbursed", "reimbursement", "pay me back"),
     ("claim", "claims")),
    (("statement", "explanation", "what i owe"), ("explanation of benefits", "patient responsibility")),
    (("denied", "turned down", "rejected", "refused", "won't pay", "will not pay", "didn't pay"),
     ("denial", "denied", "adverse benefit determination")),
    (("appeal", "complain", "complaint", "fight", "dispute", "disagree", "challenge", "reconsider"),
     ("appeal", "grievance", "internal appeal")),
    (("someone outside", "somebody outside", "outside the insurance company", "independent", "third party",
      "outside review", "neutral"), ("external review", "independent review organization")),
    (("approval", "approve", "approved", "permission", "pre-approval", "preapproval", "sign off", "okay first",
      "ask first", "ahead of time"), ("prior authorization", "preauthorization", "precertification")),
    # who is covered
    (("kid", "kids", "children", "child", "son", "daughter", "stepchild"), ("dependent", "dependents", "child")),
    (("husband", "wife", "spouse", "partner"), ("spouse", "domestic partner")),
    (("baby", "newborn", "infant", "new born", "had a child"), ("newborn", "birth", "special enrollment")),
    (("add", "sign up", "join", "enroll", "enrol"), ("enrollment", "enroll")),
    # where and from whom
    (("doctor", "doctors", "doc", "physician", "gp", "family doctor"), ("physician", "provider", "primary care")),
    (("in network", "in-network", "covered doctors", "list of doctors", "approved doctors"),
     ("network", "participating provider", "preferred provider")),
    (("out of network", "out-of-network", "non-network", "not in the network", "outside the network"),
     ("out-of-network", "non-participating provider")),
    (("abroad", "overseas", "travelling", "traveling", "travel", "foreign", "vacation", "another country",
      "outside the country"), ("outside the united states", "foreign country", "worldwide", "travel")),
    # care
    (("er", "e.r", "emergency room", "a&e", "emergency"), ("emergency room", "emergency care", "emergency services")),
    (("walk-in", "walk in", "urgent care", "after hours", "after-hours"), ("urgent care",)),
    (("ambulance", "911"), ("ambulance", "emergency transportation")),
    (("checkup", "checkups", "check-up", "check-ups", "physical", "annual exam", "wellness visit", "screening"),
     ("preventive care", "preventive services", "wellness")),
    (("pregnant", "pregnancy", "expecting", "having a baby", "giving birth"),
     ("maternity", "prenatal", "postnatal", "delivery")),
    (("birth control", "contraception", "the pill", "iud"), ("contraceptive", "family planning")),
    (("shot", "shots", "vaccine", "vaccines", "flu shot", "jab"), ("immunizations", "vaccinations")),
    (("mental health", "therapy", "therapist", "counseling", "counselling", "psychiatrist", "psychologist",
      "depression", "anxiety"), ("mental health", "behavioral health")),
    (("rehab", "addiction", "alcohol", "drug abuse", "detox"), ("substance use disorder", "rehabilitation")),
    (("scan", "scans", "mri", "ct", "x-ray", "xray", "ultrasound"), ("imaging", "diagnostic")),
    (("blood test", "blood tests", "bloodwork", "blood work", "lab", "labs"), ("laboratory", "lab tests")),
    (("surgery", "operation", "operated"), ("surgery", "surgical", "outpatient surgery")),
    (("hospital stay", "admitted", "overnight", "stay in the hospital", "stay in hospital"),
     ("inpatient", "hospital stay")),
    (("nursing home", "care home"), ("skilled nursing facility",)),
    (("end of life", "terminal"), ("hospice",)),
    (("physical therapy", "pt", "physio", "physiotherapy", "speech therapy", "occupational therapy"),
     ("rehabilitation services", "habilitation")),
    (("wheelchair", "crutches", "oxygen", "walker", "cpap", "hospital bed"), ("durable medical equipment",)),
    (("glasses", "eye exam", "contacts", "contact lenses", "eyes"), ("vision",)),
    (("teeth", "tooth", "dentist", "cleaning"), ("dental",)),
    (("hearing aid", "hearing aids"), ("hearing",)),
    # medicines
    (("meds", "medication", "medications", "medicine", "medicines", "pills", "drugs", "prescriptions"),
     ("prescription drug", "prescription", "formulary")),
    (("by mail", "mail", "delivered", "shipped", "home delivery"), ("mail order", "mail-order pharmacy")),
    (("three months", "3 months", "90 days", "90-day", "three-month"), ("90-day supply",)),
    (("one month", "30 days", "30-day", "a month's"), ("30-day supply",)),
    (("generic", "cheaper version"), ("generic drug", "generic")),
    (("brand name", "brand-name", "name brand"), ("brand-name drug", "preferred brand")),
    (("specialty drug", "specialty medication", "expensive drug"), ("specialty drug", "specialty tier")),
    (("not covered", "excluded", "doesn't cover", "does not cover", "won't cover"), ("exclusions", "not covered")),
]


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[re.Pattern, tuple[str, ...]]]:
    return [(re.compile(r"(?<![\w&.])(?:" + "|".join(re.escape(p) for p in phrases) + r")(?![\w&])", re.IGNORECASE),
             terms) for phrases, terms in GLOSSARY]


def policy_terms(query: str) -> list[str]:
    """The policy terms for the member phrases found in ``query``, in glossary order, without repeats."""
    found: list[str] = []
    for pattern, terms in _patterns():
        if pattern.search(query):
            found.extend(term for term in terms if term not in found)
    return found
