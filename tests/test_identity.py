"""The one identity normaliser (geotarget.store.identity) and suppression files, property-tested."""

from __future__ import annotations

import csv
import io
import unicodedata

import pandas as pd
import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geotarget.store.identity import (
    google_email,
    normalize_email,
    normalize_emails,
    normalize_phone,
    normalize_phones,
    sha256_hex,
)
from geotarget.store.suppression import read_people, read_values, suppression_frame

# whitespace, control and format characters that must vanish from an email wherever they are
_INVISIBLE = ["\t", "\n", "\r", " ", "\u00a0", "\u2003", "\u3000", "\u200b", "\ufeff", "\x00", "\x1f", "\u2028",
              "\u202f", "\x85"]
_local = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=12)
_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)


@st.composite
def decorated(draw):
    """A plain address and a version of it with random case, invisible characters and full-width letters."""
    base = f"{draw(_local)}@{draw(_label)}.{draw(_label)}"
    out = []
    for ch in base:
        if draw(st.booleans()):
            ch = ch.upper()
        if draw(st.integers(0, 5)) == 0 and ch.isascii() and ch.isalnum():
            ch = chr(ord(ch) + 0xFEE0)  # full-width form; NFKC maps it back
        out.append(ch)
        if draw(st.integers(0, 4)) == 0:
            out.append(draw(st.sampled_from(_INVISIBLE)))
    prefix = draw(st.sampled_from(["", "\ufeff", " ", "\t"]))
    return base, prefix + "".join(out) + draw(st.sampled_from(["", "\n", "\r\n", " "]))


@given(decorated())
def test_email_decorations_normalise_to_the_plain_address(pair):
    base, messy = pair
    assert normalize_email(messy) == base.lower()
    assert sha256_hex(normalize_email(messy)) == sha256_hex(base.lower())


@given(st.lists(st.one_of(st.text(max_size=20), decorated().map(lambda p: p[1]), st.none()), max_size=30))
def test_vectorised_emails_match_the_scalar_normaliser(values):
    got, invalid = normalize_emails(pd.Series(values, dtype=object))
    got = got.to_pylist()
    want = [normalize_email(v) for v in values]
    assert list(got) == want
    blank = [v is None or not "".join(ch for ch in unicodedata.normalize("NFKC", v)
                                      if not (ch.isspace() or unicodedata.category(ch)[0] in "CZ")) for v in values]
    assert invalid == sum(1 for w, b in zip(want, blank) if w is None and not b)


@given(st.text(max_size=30))
def test_email_normaliser_is_idempotent(text):
    once = normalize_email(text)
    if once is not None:
        assert normalize_email(once) == once
        assert not any(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in once)


def test_email_cases_from_the_issue():
    assert normalize_email("\tbob@example.com") == normalize_email("bob@example.com\n") == "bob@example.com"
    assert normalize_email("İnci@Example.com") == normalize_email("i\u0307nci@example.com")
    assert normalize_email("bob@example") is None and normalize_email("a@@b.co") is None
    assert google_email("J.Doe@gmail.com".lower()) == "jdoe@gmail.com"
    assert google_email("j.doe@googlemail.com") == "jdoe@googlemail.com"
    assert google_email("j.doe@example.com") == "j.doe@example.com"


# real numbering plans: (region, national number) pairs that phonenumbers calls valid
_NUMBERS = [("US", "2127365000"), ("FR", "612345678"), ("GB", "2079460958"), ("DE", "30123456"),
            ("US", "4155552671"), ("CA", "6135550123")]


@given(st.sampled_from(_NUMBERS), st.sampled_from(["{}", "({}) {}-{}", "{} {} {}", "{}.{}.{}"]),
       st.sampled_from(["", " ", "\u00a0", "\t"]), st.booleans())
def test_phone_formats_agree_with_phonenumbers(number, layout, pad, international):
    region, national = number
    parsed = phonenumbers.parse(national, region)
    want = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) \
        if phonenumbers.is_valid_number(parsed) else None
    parts = (national[:3], national[3:6], national[6:])
    text = layout.format(*parts) if layout != "{}" else national
    if international:
        text = f"+{parsed.country_code} {text}"
    elif region in ("FR", "GB", "DE"):
        text = "0" + text  # national trunk prefix
    assert normalize_phone(pad + text + pad, region=region) == want


def test_phones_from_the_issue_and_per_row_regions():
    assert normalize_phone("06 12 34 56 78", region="FR") == "+33612345678"
    assert normalize_phone("06 12 34 56 78") is None  # not a US number: dropped, never +10612345678
    assert normalize_phone("020 7946 0958", region="GB") == "+442079460958"
    got, invalid = normalize_phones(pd.Series(["06 12 34 56 78", "020 7946 0958", "212 736 5000", "nope", None]),
                                    regions=pd.Series(["FR", "GB", None, "US", None]))
    assert got.to_pylist() == ["+33612345678", "+442079460958", "+12127365000", None, None] and invalid == 1


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                        max_size=15).filter(lambda s: s.strip() and s.strip() == s), min_size=1, max_size=8))
def test_suppression_files_are_read_as_real_csv(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("s") / "s.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["customer_id"])
    for v in values:
        writer.writerow([v, "other"])
    path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))
    assert read_values(path) == values


def test_suppression_kinds_hash_the_normalised_value(tmp_path):
    frame = suppression_frame([" Bob@Example.com\n"], "email")
    assert frame.to_dict("records") == [{"kind": "email_sha256", "value": sha256_hex("bob@example.com")}]
    frame = suppression_frame(["(212) 736-5000"], "phone")
    assert frame["value"].tolist() == [sha256_hex("+12127365000")]
    with pytest.raises(Exception, match="not valid emails"):
        suppression_frame(["nope"], "email")
    path = tmp_path / "people.csv"
    path.write_text('id,email,phone\n"Smith, J",,\n,a@b.co,\n,,+33 6 12 34 56 78\n', encoding="utf-8")
    assert read_people(path) == {"id": ["Smith, J"], "email": ["a@b.co"], "phone": ["+33 6 12 34 56 78"]}


def test_hash_matches_hashlib():
    import hashlib

    assert sha256_hex("bob@example.com") == hashlib.sha256(b"bob@example.com").hexdigest()
    assert normalize_emails(pd.Series([], dtype=object))[0].to_pylist() == []


def _by_phonenumbers(text: str, region: str):
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) \
        if phonenumbers.is_valid_number(parsed) else None


@given(st.lists(st.tuples(
    st.sampled_from(["", "+", "+1 ", "1-", "1 ", "+44 ", "0"]),
    st.one_of(st.text(alphabet="0123456789", min_size=7, max_size=11),
              st.builds(str.__add__, st.sampled_from(["212", "646", "416", "876", "268", "800", "900", "305", "939"]),
                        st.text(alphabet="0123456789", min_size=7, max_size=7))),
    st.sampled_from(["{}", "({}) {}-{}", "{}.{}.{}", "{} {} {}", "{}/{}-{}"]),
    st.sampled_from(["US", "CA", "JM", "GB", "FR", ""]),
), min_size=1, max_size=40))
def test_vectorised_phones_agree_with_phonenumbers(rows):
    """The vectorised North American path and the one-by-one path give phonenumbers' own answer."""
    texts, regions = [], []
    for prefix, digits, layout, region in rows:
        parts = (digits[:3], digits[3:6], digits[6:])
        texts.append(prefix + (layout.format(*parts) if layout != "{}" else digits))
        regions.append(region or None)
    got, _ = normalize_phones(pd.Series(texts), regions=pd.Series(regions, dtype=object))
    assert got.to_pylist() == [_by_phonenumbers(t, r or "US") for t, r in zip(texts, regions)]


@given(st.lists(st.one_of(
    st.none(), st.sampled_from(["", " ", "\t", "+", "+1", "1", "(", "12345"]),
    st.builds(lambda digits, lead, mark: lead + mark.join([digits[:3], digits[3:6], digits[6:]]),
              st.text(alphabet="0123456789", min_size=10, max_size=10),
              st.sampled_from(["", "1", "+1", "1 ", "+1 ", "+ 1", "2", "+12"]),
              st.sampled_from(["", " ", "-", ".", "/", "\t", ") ", "x", "\u00a0", "\n"])),
), max_size=30))
def test_byte_level_phone_path_agrees_with_phonenumbers_around_empty_rows(texts):
    """The byte-level North American path, with missing, empty and odd rows anywhere in the batch
    (first, last, runs of them), gives the one-by-one normaliser's answer (phonenumbers after invisible
    characters are removed) and counts the invalid ones."""
    got, invalid = normalize_phones(pd.Series(texts, dtype=object))
    want = [normalize_phone(t) for t in texts]
    assert got.to_pylist() == want
    assert invalid == sum(t is not None and t.strip() != "" and w is None for t, w in zip(texts, want))
