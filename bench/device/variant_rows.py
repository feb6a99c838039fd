"""Every timed variant of lowbit_cuda_bench's JSON lines beside torch's cuBLAS time for the same
shape (torch_baselines.py's JSON lines, same flush): one line a variant, µs and x cuBLAS.
Usage: python3 variant_rows.py LOWBIT_JSONL TORCH_JSONL"""
import json
import sys


def torch_key(row):
    return (row["m"], row["n"], row["k"])


def lowbit_key(row):
    fields = dict(item.split("=", 1) for item in row["descriptor"].split(","))
    return (int(fields["m"]), int(fields["n"]), int(fields["k"]))


def main(lowbit_path, torch_path):
    cublas = {}
    for line in open(torch_path):
        if line.strip():
            row = json.loads(line)
            cublas[torch_key(row)] = row.get("cublas_us")
    print(f"{'M':>5} {'N x K':>11}  {'lowbit us':>9}  {'cuBLAS us':>9}  {'x cuBLAS':>8}  variant")
    for line in open(lowbit_path):
        if not line.strip():
            continue
        row = json.loads(line)
        m, n, k = lowbit_key(row)
        reference = cublas.get((m, n, k))
        for name, us in sorted(row.get("variants", {}).items(), key=lambda item: item[1]):
            ratio = f"{reference / us:.2f}x" if reference else "-"
            print(f"{m:>5} {f'{n}x{k}':>11}  {us:9.1f}  "
                  f"{reference if reference else float('nan'):9.1f}  {ratio:>8}  {name}")
        for name, failure in row.get("failures", {}).items():
            print(f"{m:>5} {f'{n}x{k}':>11}  FAILED {name}: {failure}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
