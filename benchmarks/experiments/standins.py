"""Stand-ins for held-out data sets we cannot see (docs/accuracy.md), made on this machine.

    .venv/bin/python benchmarks/experiments/standins.py OUT_DIR [--only NAME]   # make standins

writes OUT_DIR/NAME/{train,validation,test}.jsonl, rows {"text", "label"}, for each NAME:

small        2,000 training tweets drawn at random (seed 0); validation and test whole; and
             unlabeled.jsonl, rows {"text"}: the other training tweets whose text is not
             among the 2,000 (27,785), for `data.unlabeled_file` in `textlstm pretrain`.
imbalanced   the tweets, every split keeping 100 % of negatives, 35 % of neutrals, 12 % of
             positives (seed 0).
sms-like     short two-class spam-like text (SMS Spam's 13 % minority): the tweets labelled
             negative or positive (neutral dropped); every positive is kept and negatives are
             drawn at random (seed 0) so they are 13 % of each split (about 814 / 6,259 train).
debian-rare  R52-like rare classes: one-line package descriptions from the Debian bookworm
             package index on this machine (apt's lists; `apt-get update` writes them), label
             = Section with any 'contrib/' or 'non-free/' prefix dropped. -dbg/-dbgsym
             packages and exact-duplicate texts are dropped, and each source package (the
             `Source:` field, else the package's name) is assigned to one split (train 60 %,
             validation 20 %, test 20 %, seed 0), so near-identical descriptions of one source
             never cross splits; within a class and split a source gives one text at most. The
             50 sections with the most source packages (debug and oldlibs left out) are ranked
             by that count; rank i gets max(2, round(400 / i**1.3)) training texts (400 down to
             2; 34 classes have 2-10), max(1, round(0.25 x that)) validation and
             max(2, round(0.4 x that)) test texts, each capped by what its split holds, drawn
             at random (seed 0): 1,163 / 294 / 477 texts of about 7 words.
debian-long  20-Newsgroups-like long many-class documents, a CONSTRUCTED stand-in: the 20
             sections ranked as above (same source -> split assignment); a document is 10-25
             descriptions (seeded) of packages of one section from different source packages,
             joined with ". " into one text (50-290 words, median about 115: this index has the
             one-line descriptions only, so documents are shorter than 20 Newsgroups'). At most
             300 training, 75 validation and 75 test documents per section, fewer where the
             section's packages run out (30-207 training documents per section; 1,660 / 547 /
             543 in all): no package is used twice, so none is in two splits.

If a Packages file carries long descriptions (indented lines after `Description:`), they are
appended to the short one (' .' lines become paragraph breaks); bookworm's index on this
machine has none (they are in Translation-en, which apt did not download). Every file is well
under a few MB; none is committed (data/ is ignored). Train on one with
`textlstm train --config configs/auto.yaml data.train_file=OUT_DIR/NAME/train.jsonl
data.validation_file=... data.test_file=...`; `make baseline DATA=OUT_DIR/NAME` prints
TF-IDF + LinearSVC on the same splits.
"""

import argparse
import json
import random
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TWEETS = ROOT / "data" / "tweets_sentiment"
PACKAGES = Path("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_"
                "Packages.lz4")
SPLITS = ("train", "validation", "test")
LEFT_OUT = {"debug", "oldlibs"}  # debug symbols and transitional packages: no topic


def write(folder: Path, split: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                           encoding="utf-8")


def tweets(split: str) -> list[dict]:
    return [json.loads(x) for x in (TWEETS / f"{split}.jsonl").open(encoding="utf-8")]


def small(out: Path) -> None:
    rng = random.Random(0)
    train = (TWEETS / "train.jsonl").read_text(encoding="utf-8").splitlines()
    rng.shuffle(train)
    (out / "small").mkdir(parents=True, exist_ok=True)
    (out / "small" / "train.jsonl").write_text("\n".join(train[:2000]) + "\n", encoding="utf-8")
    labelled = {json.loads(x)["text"] for x in train[:2000]}
    rest = dict.fromkeys(t for x in train[2000:] if (t := json.loads(x)["text"]) not in labelled)
    (out / "small" / "unlabeled.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in rest), encoding="utf-8")
    for split in ("validation", "test"):
        shutil.copy(TWEETS / f"{split}.jsonl", out / "small" / f"{split}.jsonl")


def imbalanced(out: Path) -> None:
    rng = random.Random(0)
    keep = {"negative": 1.0, "neutral": 0.35, "positive": 0.12}
    for split in SPLITS:
        write(out / "imbalanced", split, [r for r in tweets(split)
                                          if rng.random() < keep[r["label"]]])


def sms_like(out: Path, share: float = 0.13) -> None:
    rng = random.Random(0)
    for split in SPLITS:
        rows = tweets(split)
        pos = [r for r in rows if r["label"] == "positive"]
        neg = [r for r in rows if r["label"] == "negative"]
        kept = rng.sample(neg, min(len(neg), round(share / (1 - share) * len(pos))))
        mixed = pos + kept
        rng.shuffle(mixed)
        write(out / "sms-like", split, mixed)


# ---------------------------------------------------------------- the Debian package index

def packages() -> list[dict]:
    """{package, source, section, text} per binary package, -dbg(sym) and duplicates dropped."""
    if not PACKAGES.is_file():
        print(f"{PACKAGES} is missing; run `apt-get update` (as root) to download the package "
              "lists, then run this again.", file=sys.stderr)
        sys.exit(2)
    raw = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(PACKAGES)], check=True,
                         capture_output=True, text=True).stdout
    rows, seen = [], set()
    for stanza in raw.split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if line.startswith(" ") and key:
                fields[key].append(line)
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = [value.strip()]
        if "Package" not in fields or "Section" not in fields or "Description" not in fields:
            continue
        name = fields["Package"][0]
        if name.endswith(("-dbg", "-dbgsym")):
            continue
        short, *long = fields["Description"]
        body = "\n".join("" if ln.strip() == "." else ln.strip() for ln in long)
        text = short + ("\n" + body if body else "")
        if text in seen:
            continue
        seen.add(text)
        source = fields.get("Source", [name])[0].split(" ")[0]
        section = fields["Section"][0].split("/")[-1]
        rows.append({"package": name, "source": source, "section": section, "text": text})
    return rows


def by_split_and_section(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Each source package goes to one split (60/20/20, seed 0); rows grouped by (split,
    section), in package-name order (the draws below shuffle them)."""
    rng = random.Random(0)
    split_of = {s: rng.choices(SPLITS, weights=(0.6, 0.2, 0.2))[0]
                for s in sorted({r["source"] for r in rows})}
    groups = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["package"]):
        if r["section"] not in LEFT_OUT:
            groups[split_of[r["source"]], r["section"]].append(r)
    return groups


def ranked_sections(rows: list[dict], k: int) -> list[str]:
    """The k sections with the most source packages (a section that one source fills, like
    tasks, would sit in one split only)."""
    sources = defaultdict(set)
    for r in rows:
        if r["section"] not in LEFT_OUT:
            sources[r["section"]].add(r["source"])
    return sorted(sources, key=lambda s: (-len(sources[s]), s))[:k]


def one_per_source(rows: list[dict], rng: random.Random) -> list[dict]:
    rows = rows[:]
    rng.shuffle(rows)
    seen, out = set(), []
    for r in rows:
        if r["source"] not in seen:
            seen.add(r["source"])
            out.append(r)
    return out


def debian_rare(out: Path, rows: list[dict]) -> None:
    groups = by_split_and_section(rows)
    rng = random.Random(0)
    splits = {s: [] for s in SPLITS}
    for i, section in enumerate(ranked_sections(rows, 50), start=1):
        n_train = max(2, round(400 / i**1.3))
        want = {"train": n_train, "validation": max(1, round(0.25 * n_train)),
                "test": max(2, round(0.4 * n_train))}
        for split in SPLITS:
            pool = one_per_source(groups[split, section], rng)
            splits[split] += [{"text": r["text"], "label": section} for r in pool[:want[split]]]
    for split, got in splits.items():
        rng.shuffle(got)
        write(out / "debian-rare", split, got)


def documents(pool: list[dict], rng: random.Random, limit: int) -> list[str]:
    """Cut `pool` (shuffled) into documents of 10-25 descriptions of different source packages;
    a package is used once at most, and the leftovers that cannot fill a document are dropped."""
    pool = pool[:]
    rng.shuffle(pool)
    docs = []
    while len(docs) < limit:
        size, doc, sources, rest = rng.randint(10, 25), [], set(), []
        for r in pool:
            if len(doc) < size and r["source"] not in sources:
                doc.append(r)
                sources.add(r["source"])
            else:
                rest.append(r)
        if len(doc) < size:
            break
        docs.append(". ".join(r["text"].replace("\n", " ").rstrip(".") for r in doc) + ".")
        pool = rest
    return docs


def debian_long(out: Path, rows: list[dict]) -> None:
    groups = by_split_and_section(rows)
    rng = random.Random(0)
    limit = {"train": 300, "validation": 75, "test": 75}
    splits = {s: [] for s in SPLITS}
    for section in ranked_sections(rows, 20):
        for split in SPLITS:
            splits[split] += [{"text": t, "label": section}
                              for t in documents(groups[split, section], rng, limit[split])]
    for split, got in splits.items():
        rng.shuffle(got)
        write(out / "debian-long", split, got)


TWEET_STANDINS = {"small": small, "imbalanced": imbalanced, "sms-like": sms_like}
DEBIAN_STANDINS = {"debian-rare": debian_rare, "debian-long": debian_long}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder the stand-ins are written under")
    ap.add_argument("--only", choices=[*TWEET_STANDINS, *DEBIAN_STANDINS],
                    help="write this stand-in only")
    args = ap.parse_args()
    for name, make in TWEET_STANDINS.items():
        if args.only in (None, name):
            make(args.out)
    if args.only in (None, *DEBIAN_STANDINS):
        rows = packages()
        for name, make in DEBIAN_STANDINS.items():
            if args.only in (None, name):
                make(args.out, rows)
    for name in [args.only] if args.only else [*TWEET_STANDINS, *DEBIAN_STANDINS]:
        sizes = {s: sum(1 for _ in (args.out / name / f"{s}.jsonl").open()) for s in SPLITS}
        print(f"{args.out / name}: " + ", ".join(f"{s} {n}" for s, n in sizes.items()))


if __name__ == "__main__":
    main()
