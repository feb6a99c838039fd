// The tuning-decision cache: which variant won for a problem descriptor on one device, kept in
// an SQLite file shared by every process of the user. docs/cache.md describes the file format.
//
// Thread-safety rule: a DecisionCache is used by one thread at a time (it owns one SQLite
// connection). Threads and processes that share a file each open their own DecisionCache;
// SQLite's file locks keep their writes whole.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::cache {

class Database;

// One row of the cache. The order of the members is the order of the table's columns;
// decision_cache.cpp lists them once more, in the one table every SQL text is derived from.
struct Decision {
  std::string descriptor;         // canonical descriptor text, e.g. "m=1,n=4096,k=4096,bits=4,..."
  std::string fingerprint;        // hard device fingerprint text (never crosses machines)
  std::string generator_version;  // e.g. "x86_avx512_float@1"; a different generator version is a miss
  std::string variant_name;       // e.g. "x86_avx512bf16_w4g128_n4m1k2_t2"
  std::string variant_json;       // the variant's parameters as a JSON object text
  double median_us = 0;           // median time of the winner
  double rel_err = 0;             // winner's ||out-ref||/||ref||
  int candidates = 0;             // how many candidates were timed
  std::string protocol;           // measurement protocol id, e.g. "rotate-median:1"
  std::string source_json;        // provenance (full fingerprint, lowbit version): JSON object
  std::string created_at;         // ISO-8601 UTC; filled by store() when empty
  std::string artifact_key;       // the key of the compiled artifact (cubin) this decision timed, or
                                  // empty (x86 decisions; files before schema version 3)

  bool operator==(const Decision&) const = default;
};

// A compiled kernel (a cubin) stored under the content hash of everything it was compiled from.
struct Artifact {
  std::string key;          // 64 hex digits: SHA-256 of (source, compiler version, arch, flags)
  std::string name;         // the variant's name, for people reading the file
  std::string compiler;     // e.g. "nvrtc 13.0"
  std::string arch;         // e.g. "sm_90a"
  std::vector<char> bytes;  // the cubin
  std::string created_at;   // ISO-8601 UTC; filled by store_artifact() when empty

  bool operator==(const Artifact&) const = default;
};

// m=0's row plan (schema version 4): what an any-M CUDA descriptor's row counts run on where no
// decision names their kernel (their heuristic variants) and the any-M ranges past them, each with
// the key of its cubin, so that a later process loads every part with the driver alone
// (runtime/row_buckets.h documents plan_json). Keyed like a decision.
struct RowPlan {
  std::string descriptor;         // the m=0 descriptor's canonical text
  std::string fingerprint;        // as Decision::fingerprint
  std::string generator_version;  // as Decision::generator_version
  std::string plan_json;          // a JSON object
  std::string created_at;         // ISO-8601 UTC; filled by store_row_plan() when empty

  bool operator==(const RowPlan&) const = default;
};

// read_only: another process may write the file meanwhile (a user cache). immutable: read-only,
// and nothing may change the file while it is open (a cache a deployment ships): SQLite takes no
// locks and keeps no WAL index, and the first lookup costs a third as much.
enum class OpenMode { read_write, read_only, immutable };

// The file's identity: PRAGMA application_id (ASCII "LOWB") and PRAGMA user_version.
// Version 2 added the artifacts table, version 3 the decisions' artifact_key column, version 4
// the row_plans table; files of versions 1 to 3 are still read, and a read-write open upgrades
// them in place (docs/cache.md).
inline constexpr int application_id = 0x4C4F5742;
inline constexpr int schema_version = 4;
inline constexpr int oldest_readable_schema_version = 1;

// How merge_from settles a key both files hold (docs/cache.md): `faster` (the default) takes the
// incoming decision when its median is lower, `newer` when it was created later, `keep` never.
// A row plan is not timed: under `faster` and `newer` the later one wins, under `keep` the target's.
enum class ConflictRule { faster, newer, keep };

// What merge_from did, row by row of the source.
struct MergeCounts {
  int decisions_added = 0;     // keys the target lacked
  int decisions_replaced = 0;  // keys the rule gave to the source
  int decisions_kept = 0;      // keys the rule (or equality) left to the target
  int artifacts_added = 0;     // artifacts the target lacked (the others are the same bytes: content keys)
  int artifacts_damaged = 0;   // source artifacts whose bytes failed their SHA-256 (left out, warned)
  int row_plans_added = 0;
  int row_plans_replaced = 0;
  int row_plans_kept = 0;
};

class DecisionCache {
 public:
  // Never throws for a missing, corrupt or foreign file: the problem is reported once through
  // lowbit::warn and the cache behaves as empty (lookups miss, stores return false).
  // read_write creates the file and its parent directories if missing; read_only never
  // creates or writes the database (SQLite may still create the -wal/-shm companion files it
  // needs to read a WAL database beside a writer); immutable creates and writes nothing.
  static DecisionCache open(const std::string& path, OpenMode mode);

  ~DecisionCache();
  DecisionCache(DecisionCache&& other) noexcept;
  DecisionCache& operator=(DecisionCache&& other) noexcept;
  DecisionCache(const DecisionCache&) = delete;
  DecisionCache& operator=(const DecisionCache&) = delete;

  // False when the file could not be used; every lookup then misses.
  bool usable() const;
  const std::string& path() const;
  OpenMode mode() const;

  // The decision for exactly this (descriptor, fingerprint, generator_version), if any.
  // An SQLite failure (e.g. the disk vanished) is a warning and a miss. A file older than
  // schema version 3, opened read-only, answers an empty artifact_key.
  std::optional<Decision> lookup(const std::string& descriptor, const std::string& fingerprint,
                                 const std::string& generator_version) const;

  // Inserts or replaces the row of the decision's key, filling created_at when empty.
  // Returns false, with a warning, when the cache is read-only, unusable, or SQLite fails.
  // Throws lowbit::InvalidArgument for a malformed decision (an empty key or name, JSON text
  // that is not an object, a negative or non-finite number): that is the caller's bug.
  bool store(const Decision& decision);

  // Every row, ordered by descriptor, then fingerprint, then generator version.
  std::vector<Decision> list() const;

  // The artifact stored under key, if any. Its bytes are checked against the SHA-256 stored
  // beside them: a mismatch (a damaged row) is a warning and a miss, as is an SQLite failure.
  // A version 1 file opened read-only has no artifacts: every lookup misses, silently.
  std::optional<Artifact> lookup_artifact(const std::string& key) const;
  // Whether an artifact is stored under key, without reading or checking its bytes (a caller
  // deciding what to compile; the build that follows reads them through lookup_artifact, which
  // treats a damaged one as a miss). Failures as lookup_artifact's.
  bool has_artifact(const std::string& key) const;

  // Inserts or replaces the artifact of its key, in one transaction. Returns false, with a
  // warning, when the cache is read-only, unusable, or SQLite fails. Throws InvalidArgument
  // for a key that is not 64 hex digits, an empty name, compiler or arch, or no bytes.
  bool store_artifact(const Artifact& artifact);

  // The row plan stored for exactly this (descriptor, fingerprint, generator_version), if any.
  // A file older than schema version 4 has none (a silent miss); failures as lookup's.
  std::optional<RowPlan> lookup_row_plan(const std::string& descriptor, const std::string& fingerprint,
                                         const std::string& generator_version) const;
  // Inserts or replaces the plan of its key, filling created_at when empty. Returns false, with a
  // warning, when the cache is read-only, unusable, or SQLite fails. Throws InvalidArgument for
  // an empty key field or plan_json that is not a JSON object.
  bool store_row_plan(const RowPlan& plan);
  // Every plan, ordered by descriptor, then fingerprint, then generator version.
  std::vector<RowPlan> list_row_plans() const;
  // The keys of every stored artifact, ascending (no bytes read).
  std::vector<std::string> artifact_keys() const;

  // Writes the whole file, as one consistent snapshot, to a new file at out_path (SQLite's
  // VACUUM INTO): one self-contained file in rollback-journal mode, with everything a WAL still
  // held, compacted: the file a deployment ships. Throws InvalidArgument when out_path exists or
  // this cache is unusable, lowbit::Error when SQLite fails (the partial file is removed).
  void export_to(const std::string& out_path) const;

  // Adds the decisions, artifacts and row plans of the lowbit cache file at source_path (any
  // readable schema version, opened read-only) to this one, in one transaction: all or nothing.
  // Keys both hold are settled by `rule`. Throws InvalidArgument when this cache is not open
  // read-write and usable, or the source is unusable or is this very file; lowbit::Error when
  // SQLite fails (nothing is merged then).
  MergeCounts merge_from(const std::string& source_path, ConflictRule rule);
  // The same from a source the caller opened (and so judged) already, e.g. before opening this
  // target; the same refusals.
  MergeCounts merge_from(const DecisionCache& source, ConflictRule rule);

 private:
  DecisionCache(std::string path, OpenMode mode);
  // A writer copies its commits from the WAL into the main file when it closes (a passive
  // checkpoint, which never waits): a reader kept open elsewhere, such as get_kernel's, would
  // otherwise keep them in the WAL, where a copy of the file alone, or an immutable reader,
  // does not see them.
  void checkpoint_if_writer() noexcept;
  // Throws InvalidArgument unless this cache can take a merge from source_path: open read-write,
  // usable, and another file.
  void require_merge_target(const std::string& source_path) const;
  // Whether a store must be refused (read-only or unusable); the first refusal is a warning
  // naming `what` ("decisions", "artifacts", "row plans").
  bool refuses_stores(std::string_view what);

  std::string path_;
  OpenMode mode_;
  std::unique_ptr<Database> database_;  // null when the file is unusable
  int file_version_ = 0;                // the schema version read (a reader never upgrades)
  bool warned_store_refused_ = false;   // a refused store is reported once, not per call
};

// Whether two paths name one file: the same file on disk, or, where either does not exist yet,
// the same normalised absolute path.
bool same_file(const std::string& first, const std::string& second);

// $LOWBIT_CACHE if set, else $XDG_CACHE_HOME/lowbit/cache.sqlite, else
// $HOME/.cache/lowbit/cache.sqlite (the password database's home when HOME is unset).
// Throws lowbit::Error when none of these names a directory.
std::string default_cache_path();

}  // namespace lowbit::cache
