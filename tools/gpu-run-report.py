#!/usr/bin/env python3
"""Collects what tools/gpu-run.sh left in its scratch folder into OUT/gpu-run.json and OUT/gpu-run.md.

Inputs (all optional; a missing one is reported, never fatal): host.txt (key=value), steps.tsv (name, status,
seconds, limit, note), ctest.xml (JUnit), train-PRESET.json (bench_train --json), synth-PRESET-bB.json or .txt
(bench_synth), codec-DTYPE.json (bench_codec --json). --check (the dry run) fails when a step that must run did not
produce its figures, so CI catches a broken script before a GPU minute is spent on it.
Standard library only: it runs on the GPU machine's Python and on CI's.
"""
import argparse
import glob
import json
import os
import re
import sys
import xml.etree.ElementTree as ET


def read_host(work):
    host = {}
    path = os.path.join(work, "host.txt")
    if os.path.exists(path):
        for line in open(path, encoding="utf-8", errors="replace"):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                host[k.strip()] = v.strip()
    return host


def read_steps(work):
    steps = []
    path = os.path.join(work, "steps.tsv")
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 5:
                steps.append({"step": parts[0], "status": parts[1], "seconds": int(parts[2]),
                              "limit_s": int(parts[3]), "note": parts[4]})
    return steps


def read_ctest(work):
    path = os.path.join(work, "ctest.xml")
    if not os.path.exists(path):
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return {"error": f"ctest.xml: {e}"}
    cases = root.iter("testcase")
    result = {"passed": 0, "failed": 0, "skipped": 0, "failed_tests": [], "seconds": {}}
    for c in cases:
        name = c.get("name", "?")
        result["seconds"][name] = float(c.get("time", "0") or 0)
        if c.find("failure") is not None or c.find("error") is not None or c.get("status") == "fail":
            result["failed"] += 1
            result["failed_tests"].append(name)
        elif c.find("skipped") is not None or c.get("status") in ("notrun", "disabled"):
            result["skipped"] += 1
        else:
            result["passed"] += 1
    result["total"] = result["passed"] + result["failed"] + result["skipped"]
    return result


def load_json(path, problems):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"{os.path.basename(path)}: {e}")
        return None


# bench_synth's text lines (its output is always kept as text; a --json document, where it offers one, is kept
# whole under synth_raw).
SYNTH_ONE = {
    "frames_per_second": r"decode loop: ([0-9.]+) frames/s",
    "ms_per_frame": r"decode loop: [0-9.]+ frames/s \(([0-9.]+) ms/frame",
    "codec_decode_seconds": r"codec decode: ([0-9.]+) s per",
    "first_audio_ms": r"time to first audio: ([0-9.]+) s",
    "peak_rss_gib": r"peak RSS ([0-9.]+) GiB",
}
SYNTH_BATCH = re.compile(r"^batch (\d+): .*?([0-9.]+) frames/s aggregate(?:.*?([0-9.]+) ms/step)?", re.M)


def read_synth(work, problems):
    rows, raw = [], {}
    for path in sorted(glob.glob(os.path.join(work, "synth-*.txt"))):
        m = re.match(r"synth-(.+)\.txt$", os.path.basename(path))
        if not m or m.group(1).endswith("-nobatch"):
            continue
        preset = m.group(1)
        text = open(path, encoding="utf-8", errors="replace").read()
        one = {"preset": preset, "batch": 1}
        for key, pat in SYNTH_ONE.items():
            mm = re.search(pat, text)
            one[key] = float(mm.group(1)) if mm else None
        if one["first_audio_ms"] is not None:
            one["first_audio_ms"] *= 1000.0  # printed in seconds
        if one["frames_per_second"] is not None:
            rows.append(one)
        for mm in SYNTH_BATCH.finditer(text):
            b, fps = int(mm.group(1)), float(mm.group(2))
            ms = float(mm.group(3)) if mm.group(3) else 1000.0 * b / fps
            rows.append({"preset": preset, "batch": b, "frames_per_second": fps, "ms_per_frame": ms,
                         "first_audio_ms": None, "codec_decode_seconds": None})
        jpath = os.path.join(work, f"synth-{preset}.json")
        if os.path.exists(jpath):
            doc = load_json(jpath, problems)
            if doc is not None:
                raw[preset] = doc
    notes = [open(p, encoding="utf-8").read().strip()
             for p in sorted(glob.glob(os.path.join(work, "synth-*-nobatch.txt")))]
    return rows, notes, raw


def fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def gib(mib):
    return None if mib is None else mib / 1024.0


def markdown(doc):
    h = doc["host"]
    lines = [f"# GPU run: {h.get('gpu', 'no GPU (dry run)' if doc['mode'] == 'dry' else 'GPU unknown')}", ""]
    lines += [f"- commit: `{doc['commit']}`", f"- date: {doc['date']}", f"- command: `{doc['command']}`",
              f"- mode: {doc['mode']}; {doc['elapsed_s']} s of the {doc['budget_s']} s budget",
              f"- torch: {h.get('torch', h.get('torch_cmake', '?'))} (CUDA {h.get('torch_cuda', '—')}), "
              f"nvcc {h.get('nvcc', '—')}, {h.get('compiler', '?')}, {h.get('cores', '?')} cores", ""]
    lines += ["## Steps", "", "| step | status | s | limit s | note |", "|---|---|---:|---:|---|"]
    for s in doc["steps"]:
        lines.append(f"| {s['step']} | {s['status']} | {s['seconds']} | {s['limit_s']} | {s['note']} |")
    lines += [""]
    ct = doc.get("ctest")
    lines += ["## Tests (ctest, ALEXANDRIA_TEST_DEVICE=cuda)", ""]
    if not ct:
        lines += ["not run", ""]
    elif "error" in ct:
        lines += [ct["error"], ""]
    else:
        lines += [f"{ct['passed']} passed, {ct['failed']} failed, {ct['skipped']} skipped of {ct['total']}"
                  + (f"; failed: {', '.join(ct['failed_tests'])}" if ct["failed_tests"] else ""), ""]
    lines += ["## Training (passes/s; one pass = forward, both losses, backward, clip, AdamW on the LoRA tensors)",
              "", "| preset | prompt | dtype | rank | batch | clip s | seq | passes/s | samples/s | ms/pass "
              "| peak alloc GiB | peak reserved GiB |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in doc["train"]:
        for r in t.get("runs", []):
            lines.append(
                f"| {t.get('preset')} | {r.get('prompt', '—')} | {t.get('dtype')} | {r.get('rank')} | {r.get('batch')} "
                f"| {fmt(r.get('clip_seconds'), 0)} | {r.get('sequence_length')} | {fmt(r.get('passes_per_second'), 2)} "
                f"| {fmt(r.get('samples_per_second'), 2)} | {fmt(r.get('ms_per_pass'))} "
                f"| {fmt(gib(r.get('cuda_peak_allocated_mib')), 2)} | {fmt(gib(r.get('cuda_peak_reserved_mib')), 2)} |")
        for s in t.get("skipped", []):
            lines.append(f"| {t.get('preset')} | {s.get('prompt', '—')} | {t.get('dtype')} | {s.get('rank')} "
                         f"| {s.get('batch')} | — | — | skipped: {s.get('reason')} | | | | |")
    lines += ["", "## Synthesis (decode loop; EOS forbidden, fixed frame count)", "",
              "| preset | batch | ms/step | frames/s (all streams) | x real time | first audio ms | codec decode s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in doc["synth"]:
        fps = r.get("frames_per_second")
        lines.append(f"| {r['preset']} | {r['batch']} | {fmt(r.get('ms_per_frame'), 2)} | {fmt(fps)} "
                     f"| {fmt(fps / 12.5 if fps else None)} | {fmt(r.get('first_audio_ms'))} "
                     f"| {fmt(r.get('codec_decode_seconds'), 3)} |")
    for n in doc.get("synth_notes", []):
        lines += ["", n]
    lines += ["", "## Codec (real-time factor: audio seconds per wall second)", "",
              "| codec | dtype | encode RTF | decode RTF | stream RTF | load s |", "|---|---|---:|---:|---:|---:|"]
    for c in doc["codec"]:
        for r in c.get("runs", []):
            lines.append(f"| {r.get('codec')} | {c.get('dtype')} | {fmt(r.get('encode_rtf'))} "
                         f"| {fmt(r.get('decode_rtf'))} | {fmt(r.get('stream_rtf'))} | {fmt(r.get('load_seconds'), 2)} |")
    if doc["problems"]:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in doc["problems"]]
    return "\n".join(lines) + "\n"


def check(doc):
    """The dry run's assertions: every step ran or printed, and every benchmark step left figures."""
    errors = []
    status = {s["step"]: s["status"] for s in doc["steps"]}
    for name, allowed in [("host", {"ok"}), ("prefix", {"ok", "printed"}), ("configure", {"printed"}),
                          ("build", {"printed"}), ("ctest", {"printed"}), ("train tiny", {"ok"}),
                          ("synth tiny", {"ok"}), ("codec", {"ok"})]:
        if status.get(name) not in allowed:
            errors.append(f"step '{name}': {status.get(name, 'missing')}, expected {'/'.join(sorted(allowed))}")
    runs = [r for t in doc["train"] for r in t.get("runs", [])]
    if not runs or any(not r.get("passes_per_second", 0) > 0 for r in runs):
        errors.append("training: no case with passes/s > 0")
    combos = {(c.get("rank"), c.get("batch"), c.get("frames"))
              for t in doc["train"] for c in t.get("runs", []) + t.get("skipped", [])}
    if len(combos) != 4:
        errors.append(f"training: {len(combos)} (rank, batch, clip) cases, expected 2 x 2 x 1 = 4 (run or skipped)")
    if not doc["synth"] or any(not (r.get("frames_per_second") or 0) > 0 for r in doc["synth"]):
        errors.append("synthesis: no figures")
    elif not doc["synth_notes"] and not any(r["batch"] > 1 for r in doc["synth"]):
        errors.append("synthesis: bench_synth offers --batch but printed no batched figures")
    if not any(r.get("decode_rtf", 0) > 0 for c in doc["codec"] for r in c.get("runs", [])):
        errors.append("codec: no figures")
    if doc["problems"]:
        errors += doc["problems"]
    return errors


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", choices=["gpu", "dry"], required=True)
    ap.add_argument("--budget", type=int, required=True)
    ap.add_argument("--elapsed", type=int, required=True)
    ap.add_argument("--command", default="tools/gpu-run.sh")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()

    problems = []
    host = read_host(a.work)
    train = [d for d in (load_json(p, problems) for p in sorted(glob.glob(os.path.join(a.work, "train-*.json"))))
             if d is not None]
    codec = []
    for p in sorted(glob.glob(os.path.join(a.work, "codec-*.json"))):
        d = load_json(p, problems)
        if d is not None:
            codec.append(d)
    synth, synth_notes, synth_raw = read_synth(a.work, problems)
    doc = {
        "schema": 1,
        "mode": a.mode,
        "commit": host.get("commit", "unknown"),
        "date": host.get("date", "unknown"),
        "command": a.command,
        "budget_s": a.budget,
        "elapsed_s": a.elapsed,
        "host": host,
        "steps": read_steps(a.work),
        "ctest": read_ctest(a.work),
        "train": train,
        "synth": synth,
        "synth_notes": synth_notes,
        "synth_raw": synth_raw,
        "codec": codec,
        "problems": problems,
    }
    os.makedirs(a.out, exist_ok=True)
    write_atomic(os.path.join(a.out, "gpu-run.json"), json.dumps(doc, indent=2) + "\n")
    md = markdown(doc)
    write_atomic(os.path.join(a.out, "gpu-run.md"), md)
    print(md)
    failed = [s for s in doc["steps"] if s["status"] in ("failed", "timeout")]
    if a.check:
        errors = check(doc)
        for e in errors:
            print(f"gpu-run --dry-run: {e}", file=sys.stderr)
        return 1 if errors else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
