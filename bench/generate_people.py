#!/usr/bin/python3
"""Person CSVs of any size for the ingestd benchmarks, with a known number of distinct people.

    /usr/bin/python3 bench/generate_people.py --rows N [--reappear-share 0.2] [--twin-share 0.03]
                                              [--seed S] [--first-person K] --out FILE [--truth FILE]

Columns are those of the ICE example dataset `ice_staging` (config/examples/ice/ice.yaml):
Cedula,Nombre,Apellido,Email,Telefono,Fecha de nacimiento,Direccion,Programa,Estado,Grado,School SF Id

Streaming: rows are written as they are made; memory does not depend on N. Nothing about a
person is stored: every attribute of person p is a pure function of (seed, p), so a
re-appearance of an earlier person regenerates it.

What is in the file
-------------------
* Each output row is, with probability --reappear-share, a re-appearance of an earlier person
  (uniformly chosen among the people made so far) and otherwise a new person.
* Names: Spanish/Latin American first names and two surnames, with accents and ñ. Birth dates
  1950-01-01 … 2009-12-31. The (first name, last name, birth date) of every person is unique by
  construction (a bijection of p onto the name × surname × surname × day space), EXCEPT for
  "twins": a share --twin-share of the new people copy the name and birth date of an earlier
  person. Twins and the people they copy are "strict": every row of theirs carries the cédula,
  so ingestd's conflict blocking (two different cédulas) must keep them apart; without it they
  would merge on the name + birth-date tier.
* Cédulas (8-10 digits), e-mails and phones (Colombian mobiles, 3XX XXX XXXX) are unique per
  person by construction. 85% of non-twin people have a cédula, 90% an e-mail, 90% a phone;
  every person has a birth date.
* Variations in any row (first appearance or later): cédula plain, dotted (1.023.456.789) or
  with spaces; e-mail as is or upper-cased; phone in six formats (3001234567, 300 123 4567,
  (300) 123-4567, 300-123-4567, +57 300 123 4567, +573001234567); birth date as dd/mm/yyyy or
  yyyy-mm-dd (--date-style dmy: always dd/mm/yyyy); names as given, UPPER-CASE, lower-case or without accents.
  Rows of non-strict people may drop the cédula, the e-mail and/or the phone (each 25%) but
  always keep name + birth date, so all rows of one person are linked by ingestd's exact tiers
  (name + birth date is unique for them). Rows of strict people always keep the cédula and may
  drop the e-mail, phone or birth date.
* Programa: one of Mentors/Tutores/Becas, fixed per person (so ingestd makes exactly one lead
  per person); Estado varies per row (new/contacted/enrolled; `overwrite` in the config).
  Grado (1-11) and School SF Id (SCH-A/SCH-B, both in schema.sql) are filled, fixed per person,
  for 30% of people; empty otherwise. Direccion: a Colombian-style address, often quoted (it
  has a comma).

So the truth under ingestd's rules (cédula > e-mail > name+birth date > name+phone, conflict
blocking, a row matching two records goes to review) is: distinct people = number of new
people made; leads = the same; review = 0.

The truth (JSON) goes to --truth FILE when given, and a summary line to stderr. --first-person K
numbers people from K (for a second file of entirely new people: give the previous file's
distinct_people as K, same seed; keep --reappear-share 0 for an exact count across files).
"""

import argparse
import csv
import datetime
import json
import math
import random
import sys
import time
import unicodedata

HEADER = ["Cedula", "Nombre", "Apellido", "Email", "Telefono", "Fecha de nacimiento", "Direccion",
          "Programa", "Estado", "Grado", "School SF Id"]

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

CITIES = ["Bogotá", "Medellín", "Cali", "Barranquilla", "Cartagena", "Bucaramanga", "Pereira", "Manizales",
          "Cúcuta", "Ibagué", "Santa Marta", "Pasto", "Neiva", "Villavicencio", "Popayán", "Montería"]
STREETS = ["Calle", "Carrera", "Avenida", "Diagonal", "Transversal"]
DOMAINS = ["gmail.com", "hotmail.com", "yahoo.es", "outlook.com", "une.net.co", "correo.edu.co"]
PROGRAMS = ["Mentors", "Tutores", "Becas"]
STATES = ["New", "Contacted", "Enrolled"]
PHONE_PREFIXES = [300, 301, 302, 304, 305, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 350]

DAY0 = datetime.date(1950, 1, 1)
NDAYS = (datetime.date(2009, 12, 31) - DAY0).days + 1


def fold(s):
    """ingestd's name key: case-folded, NFD, non-spacing marks removed."""
    return "".join(c for c in unicodedata.normalize("NFD", s.casefold()) if unicodedata.category(c) != "Mn")


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


class People:
    """Person p's attributes as a pure function of (seed, p)."""

    def __init__(self, seed, twin_share):
        self.seed = seed
        self.twin_share = twin_share

    def rng(self, p, salt=0):
        return random.Random((self.seed << 40) ^ (p << 2) ^ salt)

    def is_twin(self, p):
        return p > 0 and self.rng(p, 1).random() < self.twin_share

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

    def name_date(self, p):
        while self.is_twin(p):
            p = self.twin_source(p)
        v = (p * NAME_MULT + self.seed) % NAME_SPACE
        v, d = divmod(v, NDAYS)
        v, s2 = divmod(v, len(SURNAMES))
        f, s1 = divmod(v, len(SURNAMES))
        return FIRST[f], SURNAMES[s1] + " " + SURNAMES[s2], DAY0 + datetime.timedelta(days=d)

    def person(self, p):
        first, last, born = self.name_date(p)
        strict = self.is_strict(p)
        r = self.rng(p, 4)
        has_ced = strict or r.random() < 0.85
        has_email = r.random() < 0.90
        has_phone = r.random() < 0.90
        ced = 10_000_000 + (p * CEDULA_MULT + self.seed) % CEDULA_SPACE
        ph = (p * PHONE_MULT + self.seed) % PHONE_SPACE
        phone = "%d%07d" % (PHONE_PREFIXES[ph // 10_000_000], ph % 10_000_000)
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
    """One CSV row for person dict pp, with this row's variations (rng r)."""
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
    return [
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--reappear-share", type=float, default=0.2)
    ap.add_argument("--twin-share", type=float, default=0.03,
                    help="share of new people who copy an earlier person's name + birth date (different cédula)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first-person", type=int, default=0, help="number people from K (see the doc string)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--truth", help="write the truth as JSON here")
    ap.add_argument("--date-style", choices=["mixed", "dmy"], default="mixed",
                    help="mixed: birth dates as dd/mm/yyyy (60%%) or yyyy-mm-dd; dmy: always dd/mm/yyyy")
    a = ap.parse_args()
    global DATE_STYLE
    DATE_STYLE = a.date_style

    people = People(a.seed, a.twin_share)
    rows_rng = random.Random(a.seed * 7919 + 17)
    start = time.time()
    made = 0          # new people made by this file
    reappear = twins = strict = 0
    with open(a.out, "w", newline="", encoding="utf-8", buffering=1 << 20) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for _ in range(a.rows):
            if made > 0 and rows_rng.random() < a.reappear_share:
                p = a.first_person + rows_rng.randrange(made)
                reappear += 1
            else:
                p = a.first_person + made
                made += 1
                if people.is_twin(p):
                    twins += 1
                if people.is_strict(p):
                    strict += 1
            w.writerow(row_for(people.person(p), rows_rng))
    truth = {"rows": a.rows, "distinct_people": made, "expected_leads": made, "expected_review": 0,
             "reappearance_rows": reappear, "twin_people": twins, "strict_people": strict,
             "seed": a.seed, "date_style": a.date_style, "reappear_share": a.reappear_share, "twin_share": a.twin_share,
             "first_person": a.first_person, "seconds": round(time.time() - start, 1)}
    if a.truth:
        with open(a.truth, "w") as f:
            json.dump(truth, f, indent=1)
    print(f"generate_people: {a.rows} rows, {made} distinct people ({reappear} re-appearance rows, "
          f"{twins} name+birth-date twins) -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
