"""Finding personal data in free text a shopper typed: phone numbers, emails, card numbers,
Chinese resident identity numbers and street addresses, in English and Chinese.

Text is folded first, one character at a time, with NFKC: full-width digits and ``＠`` become
ASCII and the ideographic space a plain one, so ``１３９　１２３４　５６７８`` reads like any other
number. Each detector reports spans of the folded text, which map back onto the original, so what
is not personal stays exactly as the shopper wrote it.

- Phones: ``phonenumbers`` (Google's libphonenumber metadata), at VALID leniency, for numbers
  written with a country code or in the national format of the regions below.
- Cards: 13-19 digits with any single separators between them that pass the Luhn check.
- Emails, identity numbers and streets: no maintained finder fits (``pyap`` covers only US, CA and
  GB addresses written in full, and is not among our dependencies; none covers Chinese addresses or
  internationalised emails), so the smallest patterns that catch how people write them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from phonenumbers import Leniency, PhoneNumberMatcher

Span = tuple[int, int]

# Where national formats (no "+country code") are tried: the brand markets and the usual places a
# shopper's friends live. A number with a country code is found whichever region is tried.
PHONE_REGIONS = ("CN", "HK", "TW", "SG", "US", "GB", "DE", "FR", "JP", "KR", "AU", "IN")
# Fewer digits than this cannot be a phone or a card; most strings skip the detectors entirely.
_MIN_DIGITS = 7

# Labels glued to a number ("tel13912345678"): libphonenumber rightly refuses a number touching a
# Latin letter, so the label is blanked (same length) in the copy the matcher reads.
_PHONE_LABEL = re.compile(r"(?i)(?:tel|phone|mobile|mob|cell|fax|ph|whatsapp)(?=[:#]?\+?\d)")
# A number right after one of these labels is an order or reference number: libphonenumber would
# read many of them as valid national numbers somewhere ("订单号 2026020512" is a Washington DC phone).
_ID_LABEL = re.compile(
    r"(?i)(?:订单号?|单号|运单号?|编号|order(?:\s*(?:no\.?|number|id))?|ref(?:erence)?|tracking(?:\s*(?:no\.?|number))?|sku|invoice)"
    r"\s*[:：#]?\s*$"
)
# "139_1234_5670": underscores between digits read as hyphens to the matcher.
_UNDERSCORE_BETWEEN_DIGITS = re.compile(r"(?<=\d)_(?=\d)")

_CARD = re.compile(r"(?<![\w.])\d(?:[ \-/_.]?\d){12,18}(?![\w])")
# Mainland resident identity number: 17 digits and a check character (GB 11643).
_RESIDENT_ID = re.compile(r"(?<!\d)\d{17}[\dXx](?![\w])")
_RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_ID_CHECK = "10X98765432"

# Local part and domain may be any letters (RFC 6531/6532 internationalised addresses: 用户@例子.中国);
# the top-level label is letters only, which keeps "3@4.5" style numbers out.
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}")

# English: optional unit ("Apt 4B,"), a house number, one to four name words, a street type.
# Name words and type are capitalised as addresses are written, or, lower case, the type is one of
# the unambiguous ones; "2 pairs and place" or "5 way" must stay readable.
_UNIT = r"(?:(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Rm|Floor|Fl)\.?\s*#?\s*\w{1,6},?\s+)?"
_STREET_TYPES = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|"
    r"Square|Sq|Parkway|Pkwy|Highway|Hwy|Close|Crescent|Row|Gardens|Mews"
)
_EN_STREET = re.compile(
    rf"\b{_UNIT}\d{{1,5}}[A-Za-z]?,?\s+(?:(?:[A-Z][\w'\-]*|\d{{1,3}}(?:st|nd|rd|th))\.?\s+){{1,4}}"
    rf"(?:{_STREET_TYPES})\b\.?"
    rf"|(?i:\b{_UNIT}\d{{1,5}}[a-z]?,?\s+(?:[a-z][\w'\-]*\s+){{1,2}}(?:street|avenue|road|boulevard)\b)"
)
# Chinese: optional administrative divisions, a road (路, 街, 大道, 巷, 胡同, 弄), its number 号, and
# what follows it (院, 号楼, 单元, 室). A name before the road may take a few characters of the
# sentence with it ("寄到朝阳区…"): over-masking is the safe side.
# Place names are ideographs other than the words that lead into an address ("送到", "地址是").
_PLACE_CHAR = r"(?:(?![到址是往至寄送发在的给请和或])[\u3400-\u4dbf\u4e00-\u9fff])"
_ZH_STREET = re.compile(
    rf"(?:{_PLACE_CHAR}{{1,6}}?(?:省|自治区|市|区|县|镇|乡|街道))*"
    rf"{_PLACE_CHAR}{{1,8}}?(?:大街|大道|路|街|道|巷|胡同|弄|里)\s*\d{{1,5}}\s*号"
    rf"(?:\s*(?:院|楼|\d{{1,5}}\s*(?:号楼|号院|号|栋|幢|座|单元|层|楼|室)))*"
)


# Digits written as Chinese numerals ("一三九一二三四五六七八"): NFKC leaves them, so a run long enough
# to be a phone or card number is read digit for digit (one character each: the origins still hold).
_ZH_DIGIT_RUN = re.compile(r"[零〇一二三四五六七八九]{7,}")
_ZH_DIGITS = str.maketrans("零〇一二三四五六七八九", "00123456789")


def fold(text: str) -> tuple[str, list[int]]:
    """NFKC per character, and for every folded character the index of the original it came from."""
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        normal = unicodedata.normalize("NFKC", char) if not char.isascii() else char
        folded.append(normal)
        origin.extend([index] * len(normal))
    digits = _ZH_DIGIT_RUN.sub(lambda run: run.group().translate(_ZH_DIGITS), "".join(folded))
    return digits, origin


def personal_spans(text: str) -> list[Span]:
    """Spans of ``text`` (the original, not the folded copy) that hold personal data, merged."""
    folded, origin = fold(text)
    found = sorted(_detect(folded))
    merged: list[Span] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return [(origin[start], origin[end - 1] + 1) for start, end in merged if end > start]


def _detect(folded: str) -> Iterator[Span]:
    yield from _spans(_EMAIL, folded)
    yield from _spans(_EN_STREET, folded)
    yield from _spans(_ZH_STREET, folded)
    if sum(char.isdigit() for char in folded) < _MIN_DIGITS:
        return
    yield from (span for span in _spans(_CARD, folded) if luhn_valid(folded[span[0] : span[1]]))
    yield from (span for span in _spans(_RESIDENT_ID, folded) if resident_id_valid(folded[span[0] : span[1]]))
    yield from _phone_spans(folded)


def _spans(pattern: re.Pattern[str], text: str) -> Iterator[Span]:
    return (match.span() for match in pattern.finditer(text))


def _phone_spans(folded: str) -> Iterator[Span]:
    readable = _PHONE_LABEL.sub(lambda match: " " * len(match.group()), folded)
    readable = _UNDERSCORE_BETWEEN_DIGITS.sub("-", readable)
    seen: set[Span] = set()
    for region in PHONE_REGIONS:
        for match in PhoneNumberMatcher(readable, region, leniency=Leniency.VALID):
            span = (match.start, match.end)
            if span not in seen and not _is_identifier(readable, span):
                seen.add(span)
                yield span


def _is_identifier(text: str, span: Span) -> bool:
    """Digits joined to letters by a hyphen or underscore ("ORD-1234567890", "g-0123…"), or right
    after an order or reference label, are an identifier the shopper quotes, not a phone number."""
    start, end = span
    if _ID_LABEL.search(text[max(0, start - 24) : start]):
        return True
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    joined_before = len(before) == 2 and before[1] in "-_#" and before[0].isalnum()
    joined_after = len(after) == 2 and after[0] in "-_" and after[1].isalnum()
    return joined_before or joined_after


def luhn_valid(candidate: str) -> bool:
    digits = [int(char) for char in candidate if char.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def resident_id_valid(candidate: str) -> bool:
    body, check = candidate[:17], candidate[17].upper()
    total = sum(int(digit) * weight for digit, weight in zip(body, _RESIDENT_ID_WEIGHTS, strict=True))
    return _RESIDENT_ID_CHECK[total % 11] == check
