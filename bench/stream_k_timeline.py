#!/usr/bin/env python3
"""Summarizes lowbit_stream_k_timeline's CSV (bench/stream_k_timeline.cpp): per role, the
distribution of main-loop, deposit, wait, read and epilogue times, and the critical path (the
block that ends last, event by event). Times from %globaltimer (ns, comparable across SMs);
within-block durations also as %clock64 cycles where globaltimer's steps are coarse."""
import argparse
import collections
import csv
import statistics

KINDS = ["block_start", "segment_start", "loop_end", "deposit_stored", "deposit_end", "wait_start", "wait_end",
         "read_end", "segment_end"]


def spread(values):
    if not values:
        return "-"
    values = sorted(values)
    return "n={} min {:.2f} median {:.2f} max {:.2f}".format(len(values), values[0] / 1e3, statistics.median(values) / 1e3,
                                                        values[-1] / 1e3)


def segments_of(events):
    """Splits a block's events into segments: lists of (kind, argument, ns, clock)."""
    segments, current = [], None
    for event in events:
        if event[0] == "segment_start":
            current = [event]
            segments.append(current)
        elif current is not None:
            current.append(event)
    return segments


def summarize(rows, run):
    blocks = collections.defaultdict(list)
    for row in rows:
        if int(row["run"]) == run:
            blocks[int(row["block"])].append((KINDS[int(row["kind"])], int(row["argument"]), int(row["global_ns"]),
                                              int(row["clock"])))
    start = min(events[0][2] for events in blocks.values())
    end = max(events[-1][2] for events in blocks.values())
    steps = sorted({b[2] - a[2] for events in blocks.values() for a, b in zip(events, events[1:]) if b[2] > a[2]})
    # cycles per ns over each block's whole log
    rates = [(e[-1][3] - e[0][3]) / (e[-1][2] - e[0][2]) for e in blocks.values() if e[-1][2] > e[0][2]]
    print(f"run {run}: {len(blocks)} blocks, first start to last end {(end - start) / 1e3:.2f} us; "
          f"globaltimer's smallest step {steps[0] if steps else 0} ns; clock {statistics.median(rates):.3f} GHz (median)")
    starts = [events[0][2] - start for events in blocks.values()]
    print(f"  block starts after the first: {spread(starts)} us")
    roles = collections.defaultdict(lambda: collections.defaultdict(list))
    for block, events in sorted(blocks.items()):
        segments = segments_of(events)
        for index, segment in enumerate(segments):
            times = {}
            for kind, argument, ns, clock in segment:
                times.setdefault(kind, []).append((argument, ns, clock))
            # Roles from what the segment did (a deposit, waits for others' partials) and where it lies
            # in its block's run (the first of several: a contributor whose run goes on; the last).
            deposits = "deposit_end" in times
            reduces = "wait_start" in times
            place = "only segment" if len(segments) == 1 else ("first segment" if index == 0 else "last segment")
            if not deposits and not reduces:
                role = "whole tile (no contributor)"
            elif not reduces:
                role = f"deposits only ({place})"
            elif not deposits:
                role = f"reduces, no deposit ({place})"
            else:
                role = f"deposits and reduces ({place})"
            data = roles[role]
            first = times["segment_start"][0][1]
            loop_end = times["loop_end"][0][1]
            data["segment start (after launch start)"].append(first - start)
            data["main loop"].append(loop_end - first)
            data["loop end (after launch start)"].append(loop_end - start)
            if deposits:
                data["deposit: stores issued"].append(times["deposit_stored"][0][1] - loop_end)
                data["deposit: total (stores, barrier, fence, flag)"].append(times["deposit_end"][0][1] - loop_end)
                data["deposit: total, cycles x1000"].append(times["deposit_end"][0][2] - times["loop_end"][0][2])
            for (other, wait_start, _), (_, wait_end, _), (_, read_end, read_clock) in zip(
                    times.get("wait_start", []), times.get("wait_end", []), times.get("read_end", [])):
                data["wait per contributor"].append(wait_end - wait_start)
                data["read per contributor"].append(read_end - wait_end)
            if reduces:
                data["waits+reads (deposit end or loop end to last read)"].append(
                    times["read_end"][-1][1] - (times["deposit_end"][0][1] if deposits else loop_end))
                data["epilogue (last read to end)"].append(times["segment_end"][0][1] - times["read_end"][-1][1])
            elif not deposits:
                data["epilogue"].append(times["segment_end"][0][1] - loop_end)
            data["segment end (after launch start)"].append(times["segment_end"][0][1] - start)
            if index + 1 < len(segments):
                data["gap to next segment"].append(segments[index + 1][0][2] - times["segment_end"][0][1])
    for role, data in roles.items():
        print(f"  {role}:")
        for name, values in data.items():
            print(f"    {name:48s} {spread(values)} us")
    last_block = max(blocks, key=lambda b: blocks[b][-1][2])
    print(f"  critical path: block {last_block}, ends {(blocks[last_block][-1][2] - start) / 1e3:.2f} us")
    previous = start
    for kind, argument, ns, _ in blocks[last_block]:
        print(f"    {kind:15s} {argument:6d} at {(ns - start) / 1e3:7.2f} us (+{(ns - previous) / 1e3:.2f})")
        previous = ns


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv")
    parser.add_argument("--desc", default="")
    parser.add_argument("--variant", default="")
    arguments = parser.parse_args()
    with open(arguments.csv) as file:
        rows = list(csv.DictReader(file))
    print(f"== {arguments.variant} ({arguments.desc})")
    for run in sorted({int(row["run"]) for row in rows}):
        summarize(rows, run)


if __name__ == "__main__":
    main()
