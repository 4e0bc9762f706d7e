"""Company legal-form suffixes that ``company`` keys ignore (data, not code: extend it here).

Compared after the name is normalised (NFKC, case-folded): Chinese forms as a suffix of the
whole name once whitespace and punctuation are gone; Latin forms as *whole trailing words*, so
"Costco" keeps its "co" and "Incubator Labs" its "inc". Several may stack
("Acme Holdings Co., Ltd." -> "acme holdings"; "华信科技集团有限公司" -> "华信科技"), but a name is
never stripped to nothing ("Group Inc." keeps "group").
"""

from __future__ import annotations

# Longest first: the first that matches is removed, then the list is tried again.
CJK_SUFFIXES: tuple[str, ...] = (
    "集团股份有限公司",
    "集团有限责任公司",
    "集团有限公司",
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "株式会社",
    "控股集团",
    "集团公司",
    "分公司",
    "总公司",
    "集团",
    "公司",
    "有限會社",
)

# Trailing words (after punctuation became spaces): "co., ltd." -> ["co", "ltd"].
LATIN_SUFFIXES: frozenset[str] = frozenset(
    {
        "co", "company", "corp", "corporation", "inc", "incorporated", "llc", "llp", "lp",
        "ltd", "limited", "plc", "gmbh", "ag", "kg", "sa", "sas", "sarl", "srl", "spa",
        "bv", "nv", "ab", "as", "oy", "pte", "pty", "kk", "group",
    }
)  # fmt: skip
