"""make bench-programs: a deterministic Python workload (run with
PYTHONMALLOC=malloc PYTHONHASHSEED=0, so every object goes through the
malloc under test). Dicts, lists, strings, json, regex, sorting, classes;
prints digests of what it built, which must not depend on the allocator.
Usage: py_work.py [scale] (1 = the full run; the smoke run passes less)."""
import hashlib
import json
import random
import re
import sys
from collections import Counter, defaultdict

SCALE = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rng = random.Random(1234)
WORDS = ["alpha", "beta", "gamma", "delta", "kernel", "frame", "slab", "heap",
         "page", "table", "lock", "cpu", "magazine", "depot", "segment", "run"]


def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def records(n):
    out = []
    for i in range(n):
        out.append({
            "id": i,
            "name": "-".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))),
            "score": rng.random() * 1000,
            "tags": [rng.choice(WORDS) for _ in range(rng.randint(0, 8))],
            "nested": {"a": rng.randint(0, 10**6), "b": str(rng.randint(0, 10**9))},
        })
    return out


class Node:
    __slots__ = ("key", "children", "weight")

    def __init__(self, key):
        self.key = key
        self.children = {}
        self.weight = 0


def trie(words):
    root = Node("")
    for w in words:
        n = root
        for ch in w:
            n = n.children.setdefault(ch, Node(ch))
            n.weight += 1
    total, stack = 0, [root]
    while stack:
        n = stack.pop()
        total += n.weight
        stack.extend(n.children.values())
    return total


def main():
    n = int(60000 * SCALE)
    recs = records(n)
    text = json.dumps(recs)
    back = json.loads(text)
    assert back == json.loads(json.dumps(back))
    print("json", len(text), digest(back[::997]))

    by_tag = defaultdict(list)
    for r in back:
        for t in r["tags"]:
            by_tag[t].append(r["id"])
    print("tags", sorted((k, len(v), sum(v) % 100003) for k, v in by_tag.items())[:6])

    back.sort(key=lambda r: (r["name"], -r["score"]))
    print("sorted", digest([r["id"] for r in back[:50]]))

    pat = re.compile(r"(\w+)-(\w+)(?:-(\w+))?")
    counts = Counter()
    for r in back:
        for m in pat.finditer(r["name"]):
            counts[m.group(1) + m.group(2)] += 1
    print("regex", counts.most_common(5))

    lines = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(int(40000 * SCALE))]
    blob = "\n".join(lines)
    words = blob.split()
    freq = Counter(words)
    print("words", len(words), freq.most_common(3))
    print("subst", digest(re.sub(r"\b(s\w+)\b", lambda m: m.group(1).upper(), blob)[:5000]))
    print("trie", trie(words[: int(200000 * SCALE)]))

    table = {}
    for i in range(int(300000 * SCALE)):
        k = (i * 7919) % 100003
        table[str(k)] = table.get(str(k), []) + [i] if i % 3 else [i]
        if i % 5 == 0:
            table.pop(str((k * 31) % 100003), None)
    print("dict", len(table), sum(len(v) for v in table.values()))

    seqs = [[rng.randint(0, 1000) for _ in range(rng.randint(1, 200))] for _ in range(int(20000 * SCALE))]
    seqs.sort()
    print("lists", digest([s[:3] for s in seqs[::500]]), sum(map(len, seqs)))


if __name__ == "__main__":
    main()
