#!/usr/bin/python3
"""FEBRL-shaped person CSVs of any size for the fuzzy-matching benchmark, with duplicates
corrupted the way FEBRL's generator corrupts them.

    /usr/bin/python3 bench/generate_febrl.py --rows N --out FILE [--seed S] [--dup-share 0.3]
                                             [--first-person K] [--no-dups] [--missing-ids 0]

Columns are FEBRL's (bench/febrl/febrl.yaml): rec_id, given_name, surname, street_number,
address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id. rec_id carries the
truth (rec-P-org, rec-P-dup-K) as in FEBRL; ingestd does not read it.

* Names, streets and suburbs come from syllable pools, half of the draws Zipf-distributed over
  1,000 of them and half uniform, so a few names are common (the most common about 7%: a
  phonetic block of a common surname holds tens of thousands of people in 1M rows) and most are
  rare; about 600 suburbs with their postcodes, 8 states.
* A share --dup-share of the people get 1 to 3 duplicates. A duplicate carries 1 to 3
  corruptions: a typo in a name, street or suburb (insert, delete, substitute or swap a letter),
  a field left empty, one digit of the birth date, postcode, street number or soc_sec_id
  changed, or day and month of the birth date swapped.
* --missing-ids S: a share S of the people have no soc_sec_id at all (every row of theirs
  lacks it), and a duplicate's empty field may then be its soc_sec_id too. 0 (the default)
  gives every person one and never empties it, and draws exactly as before the option existed.
* Streaming: a duplicate is written within the next 2,000 rows of its original (FEBRL files
  are shuffled; a bounded delay keeps memory flat). Every attribute of person P is a function of
  (seed, P), so nothing about a person is stored.
"""

import argparse
import csv
import heapq
import random
import sys

HEADER = ["rec_id", "given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
          "state", "date_of_birth", "soc_sec_id"]
SYL = ["ka", "ri", "mo", "la", "an", "de", "son", "ber", "ton", "mi", "el", "sa", "ra", "na", "lee", "jo", "ha",
       "ley", "ma", "rt", "in", "ck", "ly", "ste", "van", "ros", "gar", "wil", "tho", "ash", "bro", "cha", "dal"]
STATES = ["nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt"]
STREET_TYPES = ["street", "road", "avenue", "crescent", "place", "circuit", "close", "drive"]


def word(rng, parts):
    return "".join(rng.choice(SYL) for _ in range(parts))


def pool(seed, n, parts):
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        w = word(rng, rng.choice(parts))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


GIVEN = pool(1, 2000, (2, 3))
SURNAMES = pool(2, 8000, (2, 3, 4))
STREETS = pool(3, 3000, (2, 3))
SUBURBS = pool(4, 600, (2, 3))
POSTCODES = {s: str(2000 + (i * 37) % 6000) for i, s in enumerate(SUBURBS)}


def skewed(rng, items):
    """Zipf (s = 1) over the first 1000 items for half the draws, uniform otherwise: the most
    common name is about 7% of people (as "Smith" or "María" are in some populations), and a
    long tail is rare."""
    if rng.random() < 0.5:
        return items[uniform_rank(rng, min(len(items), 1000)) - 1]
    return rng.choice(items)


def uniform_rank(rng, n):
    # inverse of the Zipf CDF by bisection over the harmonic numbers, computed once per n
    if n not in _HARMONIC:
        total, table = 0.0, []
        for k in range(1, n + 1):
            total += 1 / k
            table.append(total)
        _HARMONIC[n] = table
    table = _HARMONIC[n]
    u = rng.random() * table[-1]
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if table[mid] < u:
            lo = mid + 1
        else:
            hi = mid
    return lo + 1


_HARMONIC = {}


MISSING_IDS = 0.0  # --missing-ids


def person(seed, p):
    rng = random.Random(seed * 1_000_003 + p)
    suburb = skewed(rng, SUBURBS)
    rec = {
        "given_name": skewed(rng, GIVEN), "surname": skewed(rng, SURNAMES),
        "street_number": str(rng.randint(1, 400)) if rng.random() < 0.9 else "",
        "address_1": f"{skewed(rng, STREETS)} {rng.choice(STREET_TYPES)}",
        "address_2": word(rng, 2) if rng.random() < 0.6 else "",
        "suburb": suburb, "postcode": POSTCODES[suburb], "state": rng.choice(STATES),
        "date_of_birth": f"{rng.randint(1920, 2010)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        "soc_sec_id": str(1_000_000 + (p * 7_919 + seed) % 9_000_000),
    }
    # a draw of its own, after the others: with the option off every field is as before
    if MISSING_IDS and random.Random(seed * 7_777_777 + p).random() < MISSING_IDS:
        rec["soc_sec_id"] = ""
    return rec


def typo(rng, s):
    if len(s) < 2:
        return s + rng.choice("aeiou")
    i = rng.randrange(len(s))
    kind = rng.randrange(4)
    if kind == 0:
        return s[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + s[i:]
    if kind == 1:
        return s[:i] + s[i + 1:]
    if kind == 2:
        return s[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + s[i + 1:]
    j = min(i + 1, len(s) - 1)
    return s[:i] + s[j] + s[i] + s[j + 1:] if j != i else s


def digit(rng, s):
    if not s:
        return s
    i = rng.randrange(len(s))
    return s[:i] + str(rng.randrange(10)) + s[i + 1:]


def corrupt(rng, rec):
    d = dict(rec)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(10)
        if kind < 4:
            f = rng.choice(["given_name", "surname", "surname", "given_name", "address_1", "suburb"])
            d[f] = typo(rng, d[f])
        elif kind < 6:
            d[rng.choice(["street_number", "address_2", "given_name", "postcode", "date_of_birth"]
                         + (["soc_sec_id"] if MISSING_IDS else []))] = ""
        elif kind < 9:
            f = rng.choice(["date_of_birth", "postcode", "street_number", "soc_sec_id"])
            d[f] = digit(rng, d[f])
        elif d["date_of_birth"]:
            y, m, dd = d["date_of_birth"][:4], d["date_of_birth"][4:6], d["date_of_birth"][6:]
            d["date_of_birth"] = y + dd + m
    return d


def rows(n, seed, dup_share, first, with_dups):
    """(rec_id, fields) in file order: originals, and their duplicates a bounded delay later."""
    rng = random.Random(seed)
    pending = []  # (due, tiebreak, rec_id, fields)
    written, p = 0, first
    while written < n:
        if pending and pending[0][0] <= written:
            _, _, rid, rec = heapq.heappop(pending)
        else:
            rec = person(seed, p)
            rid = f"rec-{p}-org"
            if with_dups and rng.random() < dup_share:
                for k in range(rng.randint(1, 3)):
                    heapq.heappush(pending, (written + rng.randint(1, 2000), rng.random(), f"rec-{p}-dup-{k}",
                                             corrupt(rng, rec)))
            p += 1
        yield rid, rec
        written += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dup-share", type=float, default=0.3)
    ap.add_argument("--first-person", type=int, default=0)
    ap.add_argument("--no-dups", action="store_true", help="distinct people only (to fill a table)")
    ap.add_argument("--missing-ids", type=float, default=0.0, help="share of people without a soc_sec_id")
    a = ap.parse_args()
    global MISSING_IDS
    MISSING_IDS = a.missing_ids
    with (sys.stdout if a.out == "-" else open(a.out, "w", newline="")) as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for rid, rec in rows(a.rows, a.seed, a.dup_share, a.first_person, not a.no_dups):
            w.writerow([rid] + [rec[h] for h in HEADER[1:]])


if __name__ == "__main__":
    main()
