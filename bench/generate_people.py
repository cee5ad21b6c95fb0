#!/usr/bin/python3
"""Person CSVs of any size for the ingestd benchmarks, messy on purpose, with their exact truth
under ingestd's identity rules.

    /usr/bin/python3 bench/generate_people.py --rows N --out FILE [--truth FILE] [--seed S]
        [--reappear-share 0.2] [--twin-share 0.03] [--first-person K] [--date-style mixed|dmy]
        [--common-share 0.3] [--family-phone-share 0.1] [--placeholder-share 0.05]
        [--existing M --existing-out PERSONS.csv [--existing-share 0.1] [--existing-first 100000000]]
        [--truth-again]

Columns are those of the ICE example dataset `ice_staging` (config/examples/ice/ice.yaml):
Cedula,Nombre,Apellido,Email,Telefono,Fecha de nacimiento,Direccion,Programa,Estado,Grado,School SF Id

Streaming: rows are written as they are made; the file's own memory does not depend on N.
Nothing about a person is stored: every attribute of person p is a pure function of (seed, p),
so a re-appearance of an earlier person regenerates it. The truth replay (below) keeps the keys
it has seen: memory proportional to the number of distinct keys (about 0.5 GiB for 1M rows).

What is in the file
-------------------
* Each output row is, with probability --reappear-share, a re-appearance of an earlier person
  (uniformly chosen among the people made so far) and otherwise a new person.
* Names: Spanish/Latin American first names and two surnames, with accents and ñ. Birth dates
  1950-01-01 … 2009-12-31. The (first name, last name, birth date) of an ordinary person is
  unique by construction (a bijection of p onto the name × surname × surname × day space).
* Twins: a share --twin-share of the new people copy the name and birth date of an earlier
  "strict" person (twins and every 20th person). Every row of a strict person carries the
  cédula (unless a placeholder replaced it, below), so conflict blocking on the cédula keeps
  the pairs apart.
* Common names (--common-share, 30% by default): these people take their names from a small
  pool (20 first names × 18 last names) and a birth date within 59 years (1950-01-01 …
  2008-12-31): 360 names × 21,550 days, so thousands of different people share name + birth
  date in a 1M-row file.
* Shared family phones (--family-phone-share, 10% by default): these people have the phone
  number of an earlier person (of the same file, or of the existing people) whose name is not
  theirs.
* Placeholders (--placeholder-share, 5% of rows by default): the row carries a placeholder in
  its cédula, e-mail or phone column (one of them, at random): "N/A", "n/a", "0000000000",
  "sin correo", "SIN CORREO" ... (each, trimmed and lowercased, one of bench/people.yaml's
  `null_values`: "N/A", "sin correo", "0000000000"). It goes into a cell the row left empty
  when it has one (a person without an e-mail written "sin correo"), otherwise it replaces the
  value in that row.
* Cédulas (8-10 digits) and e-mails are unique per person; phones too, except shared family
  phones. 85% of non-strict people have a cédula, 90% an e-mail, 90% a phone; every person has
  a birth date.
* Variations in any row: cédula plain, dotted (1.023.456.789) or with spaces; e-mail as is or
  upper-cased; phone in six formats (3001234567, 300 123 4567, (300) 123-4567, 300-123-4567,
  +57 300 123 4567, +573001234567); birth date as dd/mm/yyyy or yyyy-mm-dd (--date-style dmy:
  always dd/mm/yyyy); names as given, UPPER-CASE, lower-case or without accents. Rows of
  non-strict people may drop the cédula, the e-mail and/or the phone (each 25%) but keep name +
  birth date. Rows of strict people keep the cédula and may drop the e-mail, phone or birth date.
* Programa: one of Mentors/Tutores/Becas, fixed per person; Estado varies per row. Grado (1-11)
  and School SF Id (SCH-A/SCH-B) are filled, fixed per person, for 30% of people. Direccion: a
  Colombian-style address, often quoted (it has a comma).
* Existing people (--existing M): M further people (numbered from --existing-first) are written
  to --existing-out as already-normalized rows of public.persons (cedula digits, email lower,
  phone E.164 "+57…", first/last name in title case, birth_date ISO, address,
  data_source 'preload'), for a plain \\copy into the target; a share --existing-share of the
  file's rows are then re-appearances of them (uniformly chosen), so the file finds some.

With --common-share 0 --family-phone-share 0 --placeholder-share 0 (and no --existing) the file
is byte for byte the one earlier versions of this generator made.

The truth: ingestd's rules, not the number of humans
----------------------------------------------------
Different people who share a name and birth date, a phone, or a row stripped of its better keys
are merged or sent to review by ingestd's rules, by design. The truth is therefore computed by
replaying the rows in order with the rule the engine uses (DESIGN §5 rule 6,
handlers/engine/identity/resolver.cpp):
  keys per tier: 1 cédula digits; 2 e-mail lowercased; 3 (name key of first name, name key of
  last name, birth date ISO); 4 (the two name keys, the phone as the generator's canonical
  10-digit number); the name key is the name lowercased with accents stripped; a tier applies
  only when all its fields are present (placeholders are absent).
  For each row, the candidates are the records holding one of its keys, each at its best
  (lowest-numbered) tier it shares with the row, minus those that hold a key at a tier above that
  where the row holds a key too (a conflicting value). 0 candidates: a new record; 1: a merge
  (the record holds all of the row's keys from then on); 2 or more: review (nothing changes).
Existing people are records (with the keys of their columns) before the first row. Only those
that hold a key some row of the file holds can ever be a candidate, so only those are kept: the
file's rows are made twice (once to collect their keys, once to replay), not stored.

The truth (JSON, --truth FILE) reports separately:
  expected_records  records the file creates (persons after the load = existing + this);
  expected_review   rows that go to review; expected_merges (per tier of the match);
  expected_rejected 0 (every value the generator writes is valid, or a null placeholder);
  distinct_people   the true number of new humans the file introduces (expected_leads keeps its
                    old meaning for the ice_staging dataset: distinct (record, Programa) pairs);
  humans_in_file    distinct humans in the file, existing ones included;
  again             (--truth-again) the same file loaded a second time on top: records it
                    creates, rows to review, merges.
A summary line goes to stderr.
"""

import argparse
import csv
import datetime
import functools
import json
import math
import random
import re
import sys
import time
import unicodedata
from array import array

HEADER = ["Cedula", "Nombre", "Apellido", "Email", "Telefono", "Fecha de nacimiento", "Direccion",
          "Programa", "Estado", "Grado", "School SF Id"]
PERSONS_HEADER = ["cedula", "email", "phone", "first_name", "last_name", "birth_date", "address", "data_source"]

FIRST = """José María Juan Ana Luis Carmen Carlos Lucía Jorge Sofía Andrés Valentina Camilo Isabel
Sebastián Daniela Alejandro Natalia Diego Paula Fernando Gabriela Ricardo Mariana Héctor Laura Óscar
Catalina Julián Andrea Esteban Verónica Iván Mónica Raúl Inés Germán Beatriz Tomás Ángela Nicolás Rocío
Martín Ximena Joaquín Pilar Ramón Leticia Rubén Dolores Adrián Elena Álvaro Rosa Emilio Teresa Fabián
Yolanda Hernán Marisol Cristóbal Lorena Efraín Esperanza Jesús Milagros Mauricio Consuelo Gonzalo Noemí
Sergio Raquel Víctor Susana Arturo Gloria Wilson Yesenia Fredy Diana Patricia Edwin Jhon Yamile Nelson
Sandra Orlando Liliana Rodrigo Claudia Enrique Eugenia Agustín Belén""".split() + [
    "Luz Marina", "Juan Pablo", "María José", "Juan David", "Ana María", "Luis Fernando", "María Fernanda"]

SURNAMES = """García Rodríguez Martínez López González Hernández Pérez Sánchez Ramírez Torres Flores Rivera
Gómez Díaz Cruz Morales Reyes Gutiérrez Ortiz Chávez Ruiz Jiménez Mendoza Álvarez Castillo Romero Vargas
Herrera Medina Aguilar Moreno Muñoz Rojas Guzmán Castro Ortega Vásquez Ramos Suárez Peña Cárdenas Ríos
Salazar Núñez Quintero Ospina Londoño Restrepo Zapata Osorio Valencia Arango Cardona Giraldo Betancur
Mejía Henao Echeverri Duque Montoya Acosta Benítez Cabrera Cortés Delgado Escobar Figueroa Fuentes Gallego
Guerrero Ibáñez Lozano Marín Molina Navarro Nieto Palacios Pardo Parra Paredes Pineda Quiroga Rincón Sáenz
Sandoval Sierra Solano Tovar Uribe Vélez Villalobos Zambrano Bermúdez Caicedo Córdoba Durán Forero Galindo
Hurtado León Maldonado Ocampo Patiño Quiñones Rentería Salcedo Toro Urrego Vallejo Yepes Zuluaga Agudelo
Bohórquez Cifuentes Espinosa Franco Garzón Jaramillo Lara Meneses Niño Orozco Pacheco Rosero Serna Tamayo
Ulloa Villamizar Arbeláez Buitrago Carvajal Dávila Estrada Fajardo Grajales Hoyos Izquierdo Lemus Mosquera
Noriega Ovalle Prieto Roa Sepúlveda Trujillo Velandia""".split()

# The common-name pool: 20 first names x 18 last names.
COMMON_FIRST = ["José", "María", "Juan", "Ana", "Luis", "Carmen", "Carlos", "Lucía", "Jorge", "Sofía", "Andrés",
                "Valentina", "Camilo", "Daniela", "Diego", "Paula", "Juan Pablo", "María José", "Ángela", "Óscar"]
COMMON_LAST = ["García López", "Rodríguez Pérez", "Martínez Gómez", "González Díaz", "Hernández Ruiz",
               "Sánchez Torres", "Ramírez Rojas", "Gómez Muñoz", "Díaz Castro", "López Vargas", "Pérez Peña",
               "Torres Ríos", "Rojas Núñez", "Muñoz Ospina", "Castro Restrepo", "Vargas Zapata",
               "Jiménez Cárdenas", "Álvarez Suárez"]

CITIES = ["Bogotá", "Medellín", "Cali", "Barranquilla", "Cartagena", "Bucaramanga", "Pereira", "Manizales",
          "Cúcuta", "Ibagué", "Santa Marta", "Pasto", "Neiva", "Villavicencio", "Popayán", "Montería"]
STREETS = ["Calle", "Carrera", "Avenida", "Diagonal", "Transversal"]
DOMAINS = ["gmail.com", "hotmail.com", "yahoo.es", "outlook.com", "une.net.co", "correo.edu.co"]
PROGRAMS = ["Mentors", "Tutores", "Becas"]
STATES = ["New", "Contacted", "Enrolled"]
PHONE_PREFIXES = [300, 301, 302, 304, 305, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 350]

# Placeholders per column; trimmed and lowercased, each is one of people.yaml's null_values.
NULL_VALUES = ["N/A", "sin correo", "0000000000"]
PLACEHOLDERS = {0: ["N/A", "n/a", "0000000000", " N/A "],            # Cedula
                3: ["sin correo", "Sin correo", "SIN CORREO", "N/A"],  # Email
                4: ["0000000000", "N/A", "n/a"]}                       # Telefono
assert all(v.strip().lower() in {n.lower() for n in NULL_VALUES} for vs in PLACEHOLDERS.values() for v in vs)

DAY0 = datetime.date(1950, 1, 1)
NDAYS = (datetime.date(2009, 12, 31) - DAY0).days + 1
NDAYS_COMMON = (datetime.date(2009, 1, 1) - DAY0).days   # 59 years: 1950-01-01 ... 2008-12-31


@functools.lru_cache(maxsize=None)
def fold(s):
    """ingestd's name key (the `name` normalizer's key, SQL ingestd.name_key): spaces trimmed
    and collapsed, case-folded, decomposed, non-spacing marks removed. Cached: names come from
    a few hundred thousand spellings at most."""
    s = " ".join(s.split())
    return "".join(c for c in unicodedata.normalize("NFKD", s.casefold()) if unicodedata.category(c) != "Mn")


def unique_by_fold(names):
    seen, out = set(), []
    for n in names:
        k = fold(n)
        if k not in seen:
            seen.add(k)
            out.append(n)
    return out


FIRST = unique_by_fold(FIRST)
SURNAMES = unique_by_fold(SURNAMES)
NAME_SPACE = len(FIRST) * len(SURNAMES) * len(SURNAMES) * NDAYS
assert len(COMMON_FIRST) == 20 and len(COMMON_LAST) == 18
assert len(unique_by_fold(COMMON_FIRST)) == 20 and len(unique_by_fold(COMMON_LAST)) == 18


def golden_mult(m):
    """A multiplier coprime to m near m/phi: p -> p*a mod m is a bijection that scatters well."""
    a = int(m * 0.6180339887498949) | 1
    while math.gcd(a, m) != 1:
        a += 2
    return a


NAME_MULT = golden_mult(NAME_SPACE)
PHONE_SPACE = len(PHONE_PREFIXES) * 10_000_000
PHONE_MULT = golden_mult(PHONE_SPACE)
CEDULA_SPACE = 9_990_000_000                    # cédulas 10,000,000 … 9,999,999,999
CEDULA_MULT = golden_mult(CEDULA_SPACE)
assert math.gcd(NAME_MULT, NAME_SPACE) == 1 and math.gcd(PHONE_MULT, PHONE_SPACE) == 1
assert math.gcd(CEDULA_MULT, CEDULA_SPACE) == 1


def strip_accents(s):
    return "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")


def ascii_slug(s):
    return strip_accents(s).lower().replace(" ", "")


M64 = (1 << 64) - 1


@functools.lru_cache(maxsize=1 << 16)
def _is_twin(seed, twin_share, p):
    return random.Random((seed << 40) ^ (p << 2) ^ 1).random() < twin_share


class People:
    """Person p's attributes as a pure function of (seed, p) and the shares."""

    def __init__(self, seed, twin_share, common_share=0.0, family_share=0.0, existing_first=None):
        self.seed = seed
        self.twin_share = twin_share
        self.common_share = common_share
        self.family_share = family_share
        self.existing_first = existing_first

    def rng(self, p, salt=0):
        return random.Random((self.seed << 40) ^ (p << 2) ^ salt)

    def is_twin(self, p):
        return p > 0 and _is_twin(self.seed, self.twin_share, p)

    def mix(self, p, salt):
        """A 64-bit hash of (seed, p, salt) (splitmix64): the new knobs draw from it, which is
        cheaper than seeding a Random and leaves the older draws (and files) as they were."""
        z = ((self.seed << 40) ^ (p << 8) ^ salt) * 0x9E3779B97F4A7C15 & M64
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & M64
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & M64
        return z ^ (z >> 31)

    def twin_source(self, p):
        """The earlier strict person whose name and birth date twin p copies."""
        r = self.rng(p, 2)
        while True:
            q = r.randrange(p)
            if self.is_strict(q):
                return q

    def is_strict(self, p):
        # twins are strict; so is every 20th person (they can then be copied by later twins;
        # person 0 is one, so a twin always finds a source)
        return p % 20 == 0 or self.is_twin(p)

    def is_common(self, p):
        return self.common_share > 0 and self.mix(p, 5) < self.common_share * 2.0 ** 64

    def name_date(self, p):
        while self.is_twin(p):
            p = self.twin_source(p)
        if self.is_common(p):
            v, f = divmod(self.mix(p, 7), 20)
            v, l = divmod(v, 18)
            return COMMON_FIRST[f], COMMON_LAST[l], DAY0 + datetime.timedelta(days=v % NDAYS_COMMON)
        v = (p * NAME_MULT + self.seed) % NAME_SPACE
        v, d = divmod(v, NDAYS)
        v, s2 = divmod(v, len(SURNAMES))
        f, s1 = divmod(v, len(SURNAMES))
        return FIRST[f], SURNAMES[s1] + " " + SURNAMES[s2], DAY0 + datetime.timedelta(days=d)

    def own_phone(self, p):
        ph = (p * PHONE_MULT + self.seed) % PHONE_SPACE
        return "%d%07d" % (PHONE_PREFIXES[ph // 10_000_000], ph % 10_000_000)

    def family_source(self, p, lo):
        """The earlier person (in [lo, p)) whose phone p shares, of another name; None if p has
        its own phone."""
        if self.family_share <= 0 or p <= lo:
            return None
        if self.mix(p, 6) >= self.family_share * 2.0 ** 64:
            return None
        f, l, _ = self.name_date(p)
        mine = (fold(f), fold(l))
        for i in range(20):
            q = lo + self.mix(p, 16 + i) % (p - lo)
            qf, ql, _ = self.name_date(q)
            if (fold(qf), fold(ql)) != mine:
                return q
        return None

    def phone(self, p, lo):
        q = self.family_source(p, lo)
        return self.own_phone(p) if q is None else self.phone(q, lo)

    def person(self, p, lo=0):
        first, last, born = self.name_date(p)
        strict = self.is_strict(p)
        r = self.rng(p, 4)
        has_ced = strict or r.random() < 0.85
        has_email = r.random() < 0.90
        has_phone = r.random() < 0.90
        ced = 10_000_000 + (p * CEDULA_MULT + self.seed) % CEDULA_SPACE
        phone = self.phone(p, lo)
        user = "%s.%s.%s" % (ascii_slug(first), ascii_slug(last.split(" ")[0]), base36(p))
        email = "%s@%s" % (user, r.choice(DOMAINS))
        address = "%s %d # %d-%d, %s" % (r.choice(STREETS), r.randint(1, 200), r.randint(1, 120),
                                          r.randint(1, 99), r.choice(CITIES))
        student = r.random() < 0.30
        return {
            "strict": strict, "cedula": str(ced) if has_ced else None, "first": first, "last": last,
            "born": born, "email": email if has_email else None, "phone": phone if has_phone else None,
            "address": address if r.random() < 0.7 else None, "program": r.choice(PROGRAMS),
            "grade": str(r.randint(1, 11)) if student else "", "school": r.choice(["SCH-A", "SCH-B"]) if student else "",
        }


def base36(n):
    s = ""
    while True:
        n, d = divmod(n, 36)
        s = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + s
        if n == 0:
            return s


def fmt_cedula(c, r):
    k = r.random()
    if k < 0.5:
        return c
    if k < 0.85:
        groups = []
        while len(c) > 3:
            groups.insert(0, c[-3:])
            c = c[:-3]
        return ".".join([c] + groups)
    return " ".join([c[:-6], c[-6:-3], c[-3:]]) if len(c) > 6 else c


def fmt_phone(ph, r):
    a, b, c = ph[:3], ph[3:6], ph[6:]
    return r.choice([ph, f"{a} {b} {c}", f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+57 {a} {b} {c}", f"+57{ph}"])


def fmt_name(s, r):
    k = r.random()
    if k < 0.70:
        return s
    if k < 0.80:
        return s.upper()
    if k < 0.90:
        return s.lower()
    return strip_accents(s)


DATE_STYLE = "mixed"


def row_for(pp, r):
    """One CSV row for person dict pp, with this row's variations (rng r), and the values it
    carries: [cédula digits, e-mail, canonical phone, birth date] (None where the row has none)."""
    strict = pp["strict"]
    ced = pp["cedula"]
    email = pp["email"]
    phone = pp["phone"]
    born = pp["born"]
    if not strict:
        if ced and r.random() < 0.25:
            ced = None
        if email and r.random() < 0.25:
            email = None
        if phone and r.random() < 0.25:
            phone = None
    else:
        if email and r.random() < 0.2:
            email = None
        if phone and r.random() < 0.2:
            phone = None
        if r.random() < 0.1:
            born = None
    if email and r.random() < 0.3:
        email = email.upper() if r.random() < 0.5 else email[0].upper() + email[1:]
    row = [
        fmt_cedula(ced, r) if ced else "",
        fmt_name(pp["first"], r),
        fmt_name(pp["last"], r),
        email or "",
        fmt_phone(phone, r) if phone else "",
        (born.strftime("%d/%m/%Y") if r.random() < 0.6 or DATE_STYLE == "dmy" else born.isoformat()) if born else "",
        pp["address"] or "",
        pp["program"],
        r.choice(STATES),
        pp["grade"],
        pp["school"],
    ]
    return row, [ced, email, phone, born]


NONDIGIT = re.compile(r"\D")


def row_keys(row, vals):
    """The row's identity key per tier (None where the tier does not apply), as ingestd makes
    them: cédula digits, e-mail lowercased, (name keys, ISO birth date), (name keys, phone)."""
    ced, email, phone, born = vals
    nk = fold(row[1]) + "\x1f" + fold(row[2])
    return (NONDIGIT.sub("", row[0]) if ced else None,
            email.lower() if email else None,
            nk + "\x1f" + born.isoformat() if born else None,
            nk + "\x1f" + phone if phone else None)


def person_keys(pp):
    """The keys an existing person's normalized row holds in its columns."""
    nk = fold(pp["first"]) + "\x1f" + fold(pp["last"])
    return (pp["cedula"], pp["email"].lower() if pp["email"] else None, nk + "\x1f" + pp["born"].isoformat(),
            nk + "\x1f" + pp["phone"] if pp["phone"] else None)


class Replay:
    """ingestd's identity rule (handlers/engine/identity/resolver.cpp), one row at a time.
    holders[tier]: key -> record (an int) or records (a list); tiers[record]: a bit per tier at
    which the record holds any key (all the conflict test needs)."""

    TIERS = 4

    def __init__(self):
        self.holders = [dict() for _ in range(self.TIERS)]
        self.tiers = array("B")
        self.records = 0
        self.leads = set()        # record * 4 + Programa: ice_staging's leads

    def hold(self, rec, keys):
        m = self.tiers[rec]
        for t, k in enumerate(keys):
            if k is None:
                continue
            m |= 1 << t
            h = self.holders[t]
            cur = h.get(k)
            if cur is None:
                h[k] = rec
            elif type(cur) is int:
                if cur != rec:
                    h[k] = [cur, rec]
            elif rec not in cur:
                cur.append(rec)
        self.tiers[rec] = m

    def add_record(self, keys):
        rec = len(self.tiers)
        self.tiers.append(0)
        self.hold(rec, keys)
        return rec

    def step(self, keys, program, counts):
        best = {}
        for t, k in enumerate(keys):
            if k is None:
                continue
            cur = self.holders[t].get(k)
            if cur is None:
                continue
            if type(cur) is int:
                best.setdefault(cur, t)
            else:
                for rec in cur:
                    best.setdefault(rec, t)
        cands = []
        for rec, t in best.items():
            m = self.tiers[rec]
            if not any(keys[u] is not None and m >> u & 1 for u in range(t)):
                cands.append((rec, t))
        if len(cands) > 1:
            counts["review"] += 1
            return
        if not cands:
            rec = self.add_record(keys)
            counts["records"] += 1
        else:
            rec, t = cands[0]
            self.hold(rec, keys)
            counts["merges"][t] += 1
        self.leads.add(rec * 4 + PROGRAMS.index(program))


def new_counts():
    return {"records": 0, "review": 0, "merges": [0] * Replay.TIERS}


def file_rows(a, people):
    """The file's rows in order, with their values and the person each is of. Deterministic:
    every call yields the same rows."""
    rows_rng = random.Random(a.seed * 7919 + 17)
    mess = random.Random(a.seed * 104729 + 5)       # new knobs draw here: old files stay as they were
    stats = {"made": 0, "reappear": 0, "twins": 0, "strict": 0, "common": 0, "family": 0, "existing_rows": 0,
             "shared_name_date": 0,
             "placeholders": {"cedula": 0, "email": 0, "phone": 0}}
    existing_seen = set()
    name_dates = set()      # (name key, birth date) of the file's new people: how many share one
    names = {0: "cedula", 3: "email", 4: "phone"}
    vidx = {0: 0, 3: 1, 4: 2}
    for _ in range(a.rows):
        if a.existing and mess.random() < a.existing_share:
            p = a.existing_first + mess.randrange(a.existing)
            lo = a.existing_first
            stats["existing_rows"] += 1
            existing_seen.add(p)
        elif stats["made"] > 0 and rows_rng.random() < a.reappear_share:
            p = a.first_person + rows_rng.randrange(stats["made"])
            lo = a.first_person
            stats["reappear"] += 1
        else:
            p = a.first_person + stats["made"]
            lo = a.first_person
            stats["made"] += 1
            if people.is_twin(p):
                stats["twins"] += 1
            if people.is_strict(p):
                stats["strict"] += 1
            if people.is_common(p):
                stats["common"] += 1
            first, last, born = people.name_date(p)
            nd = (fold(first), fold(last), born)
            if nd in name_dates:
                stats["shared_name_date"] += 1
            else:
                name_dates.add(nd)
            if people.family_source(p, lo) is not None:
                stats["family"] += 1
        pp = people.person(p, lo)
        row, vals = row_for(pp, rows_rng)
        if a.placeholder_share > 0 and mess.random() < a.placeholder_share:
            empty = [i for i in (0, 3, 4) if row[i] == ""]
            i = mess.choice(empty) if empty else mess.choice((0, 3, 4))
            row[i] = mess.choice(PLACEHOLDERS[i])
            vals[vidx[i]] = None
            stats["placeholders"][names[i]] += 1
        yield row, vals, pp
    stats["existing_people_reused"] = len(existing_seen)
    a._stats = stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--reappear-share", type=float, default=0.2)
    ap.add_argument("--twin-share", type=float, default=0.03,
                    help="share of new people who copy an earlier person's name + birth date (different cédula)")
    ap.add_argument("--common-share", type=float, default=0.3,
                    help="share of people named from a pool of 20 first x 18 last names, born within 59 years")
    ap.add_argument("--family-phone-share", type=float, default=0.1,
                    help="share of people who have the phone number of an earlier person of another name")
    ap.add_argument("--placeholder-share", type=float, default=0.05,
                    help="share of rows with a placeholder (N/A, sin correo, 0000000000) in cédula, e-mail or phone")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first-person", type=int, default=0, help="number people from K (see the doc string)")
    ap.add_argument("--existing", type=int, default=0, help="M existing people, written to --existing-out")
    ap.add_argument("--existing-out", help="the existing people as normalized persons rows (CSV with header)")
    ap.add_argument("--existing-share", type=float, default=0.1,
                    help="with --existing: share of the file's rows that are existing people")
    ap.add_argument("--existing-first", type=int, default=100_000_000, help="number existing people from K")
    ap.add_argument("--out", required=True)
    ap.add_argument("--truth", help="write the truth as JSON here")
    ap.add_argument("--truth-again", action="store_true",
                    help="also the truth of loading the same file a second time on top (one more pass)")
    ap.add_argument("--date-style", choices=["mixed", "dmy"], default="mixed",
                    help="mixed: birth dates as dd/mm/yyyy (60%%) or yyyy-mm-dd; dmy: always dd/mm/yyyy")
    a = ap.parse_args()
    if a.existing and not a.existing_out:
        ap.error("--existing needs --existing-out")
    if a.existing and a.first_person + 2 * a.rows > a.existing_first:
        ap.error("the file's people would overlap the existing people's numbers (--existing-first)")
    global DATE_STYLE
    DATE_STYLE = a.date_style

    people = People(a.seed, a.twin_share, a.common_share, a.family_phone_share,
                    a.existing_first if a.existing else None)
    start = time.time()
    replay = Replay()
    first = new_counts()
    filekeys = [set() for _ in range(Replay.TIERS)] if a.existing else None
    with open(a.out, "w", newline="", encoding="utf-8", buffering=1 << 20) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for row, vals, pp in file_rows(a, people):
            w.writerow(row)
            keys = row_keys(row, vals)
            if filekeys is None:
                replay.step(keys, pp["program"], first)
            else:
                for t, k in enumerate(keys):
                    if k is not None:
                        filekeys[t].add(k)
    stats = a._stats
    existing_kept = 0
    if a.existing:
        # Existing people: written for \copy; kept in the replay only if they hold a key of the
        # file (no other record can ever be a candidate of a row).
        with open(a.existing_out, "w", newline="", encoding="utf-8", buffering=1 << 20) as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(PERSONS_HEADER)
            for p in range(a.existing_first, a.existing_first + a.existing):
                pp = people.person(p, a.existing_first)
                w.writerow([pp["cedula"] or "", (pp["email"] or "").lower(), "+57" + pp["phone"] if pp["phone"] else "",
                            pp["first"], pp["last"], pp["born"].isoformat(), pp["address"] or "", "preload"])
                keys = person_keys(pp)
                if any(k is not None and k in filekeys[t] for t, k in enumerate(keys)):
                    replay.add_record(keys)
                    existing_kept += 1
        filekeys = None
        for row, vals, pp in file_rows(a, people):
            replay.step(row_keys(row, vals), pp["program"], first)
    leads = len(replay.leads)
    again = None
    if a.truth_again:
        again = new_counts()
        for row, vals, pp in file_rows(a, people):
            replay.step(row_keys(row, vals), pp["program"], again)
        again["leads_created"] = len(replay.leads) - leads
        again = {"expected_records": again["records"], "expected_review": again["review"],
                 "expected_merges": again["merges"], "expected_leads_created": again["leads_created"]}
    humans = stats["made"] + stats["existing_people_reused"]
    truth = {"rows": a.rows,
             "expected_records": first["records"], "expected_review": first["review"],
             "expected_merges": first["merges"], "expected_rejected": 0,
             "distinct_people": stats["made"], "humans_in_file": humans,
             "expected_leads": leads,
             "existing": a.existing, "existing_rows": stats["existing_rows"],
             "existing_people_reused": stats["existing_people_reused"], "existing_records_in_replay": existing_kept,
             "again": again,
             "reappearance_rows": stats["reappear"], "twin_people": stats["twins"], "strict_people": stats["strict"],
             "common_name_people": stats["common"], "family_phone_people": stats["family"],
             "people_sharing_an_earlier_name_and_birth_date": stats["shared_name_date"],
             "placeholder_rows": stats["placeholders"], "null_values": NULL_VALUES,
             "seed": a.seed, "date_style": a.date_style, "reappear_share": a.reappear_share, "twin_share": a.twin_share,
             "common_share": a.common_share, "family_phone_share": a.family_phone_share,
             "placeholder_share": a.placeholder_share, "existing_share": a.existing_share if a.existing else None,
             "existing_first": a.existing_first if a.existing else None,
             "first_person": a.first_person, "seconds": round(time.time() - start, 1)}
    if a.truth:
        with open(a.truth, "w") as f:
            json.dump(truth, f, indent=1)
    print(f"generate_people: {a.rows} rows -> {a.out}: {humans} distinct humans ({stats['made']} new, "
          f"{stats['existing_people_reused']} existing), under ingestd's rules {first['records']} new records, "
          f"{first['review']} review rows, merges per tier {first['merges']}"
          + (f"; again: {again['expected_records']} records, {again['expected_review']} review" if again else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
