"""Table of the heuristic variant against the tuned winner from bench/heuristic_vs_tuned.sh's
output: bench.jsonl (one `lowbit bench --json` object per line, with "policy": tuned or
heuristic, in pairs) and tune.json (`lowbit tune --json`, for the tuning-time median).
Ratio = heuristic time / tuned time, both from `lowbit bench` back to back; with several
rounds (ROUNDS in heuristic_vs_tuned.sh) each side's time is the median over the rounds, which
on a shared VM whose bandwidth moves in phases is what makes the ratio mean anything. Rows above
1.20 are marked. Usage: python3 heuristic_table.py BENCH_JSONL TUNE_JSON"""
import json
import sys

LIMIT = 1.20  # issue 3: the heuristic within 20 % of the tuned best


def short_variant(name):
    # x86_avx512bf16_w4g128_n4m1k2_t2 -> n4m1k2_t2
    return "_".join(name.split("_")[3:]) or name


def main():
    results = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    tuned_at_tuning = {result["descriptor"]: result["time_us"] for result in json.load(open(sys.argv[2]))["results"]}
    by_policy = {}
    for result in results:
        by_policy.setdefault(result["descriptor"], {}).setdefault(result["policy"], []).append(result)
    for pair in by_policy.values():
        for policy, rounds in pair.items():
            times = sorted(result["time_us"] for result in rounds)
            median = dict(rounds[0])
            median["time_us"] = times[len(times) // 2]
            median["rounds"] = len(times)
            pair[policy] = median
    print("| M | N×K | tuned variant | tuned µs (at tuning) | heuristic variant | heuristic µs | heuristic / tuned |")
    print("| ---: | --- | --- | ---: | --- | ---: | ---: |")
    worst = 0.0
    for descriptor, pair in by_policy.items():
        fields = dict(item.split("=", 1) for item in descriptor.split(","))
        tuned, heuristic = pair["tuned"], pair["heuristic"]
        ratio = heuristic["time_us"] / tuned["time_us"]
        worst = max(worst, ratio)
        mark = " **over**" if ratio > LIMIT else ""
        print(f"| {tuned['m']} | {fields['n']}×{fields['k']} | {short_variant(tuned['variant'])} | "
              f"{tuned['time_us']:.1f} ({tuned_at_tuning.get(descriptor, 0):.1f}) | "
              f"{short_variant(heuristic['variant'])} | {heuristic['time_us']:.1f} | {ratio:.2f}{mark} |")
    print()
    print(f"worst heuristic / tuned: {worst:.2f} (limit {LIMIT:.2f})")


if __name__ == "__main__":
    main()
