#include "cache/decision_cache.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

#include "cache/content_hash.h"
#include "cache/sqlite.h"
#include "lowbit/errors.h"

namespace lowbit::cache {
namespace {

// Every value the table holds is one of these C++ types; each maps to one SQLite type.
using Member = std::variant<std::string Decision::*, double Decision::*, int Decision::*>;

// What store() demands of a field before writing it.
enum class Rule { any, non_empty, json_object, non_negative, empty_or_hex_key };

struct Field {
  std::string_view name;  // the column's name
  Member member;
  bool key;  // part of the primary key; the key's order is the order here
  Rule rule;
  int since;  // the schema version that added the column (older files answer its default)
};

// The one list of Decision's fields. The table's columns, the CREATE TABLE, INSERT, SELECT and
// upgrade texts, binding, row reading and validation are all derived from it. A field added to
// Decision but not here fails the round-trip test, whose Decision compares every member. A
// column added later goes last: ALTER TABLE appends, so fresh and upgraded files agree.
constexpr std::array<Field, 12> fields{{
    {"descriptor", &Decision::descriptor, true, Rule::non_empty, 1},
    {"fingerprint", &Decision::fingerprint, true, Rule::non_empty, 1},
    {"generator_version", &Decision::generator_version, true, Rule::non_empty, 1},
    {"variant_name", &Decision::variant_name, false, Rule::non_empty, 1},
    {"variant_json", &Decision::variant_json, false, Rule::json_object, 1},
    {"median_us", &Decision::median_us, false, Rule::non_negative, 1},
    {"rel_err", &Decision::rel_err, false, Rule::non_negative, 1},
    {"candidates", &Decision::candidates, false, Rule::non_negative, 1},
    {"protocol", &Decision::protocol, false, Rule::non_empty, 1},
    {"source_json", &Decision::source_json, false, Rule::json_object, 1},
    {"created_at", &Decision::created_at, false, Rule::any, 1},
    {"artifact_key", &Decision::artifact_key, false, Rule::empty_or_hex_key, 3},
}};

constexpr std::string_view table_name = "decisions";

// The artifacts table (schema version 2). Its six columns are bound and read in one place
// each (store_artifact, lookup_artifact), so the SQL is written out rather than derived.
// bytes_sha256 lets a lookup notice a damaged row before the bytes reach a loader.
constexpr std::string_view create_artifacts_sql =
    "CREATE TABLE artifacts (\n"
    "  key TEXT NOT NULL PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  compiler TEXT NOT NULL,\n"
    "  arch TEXT NOT NULL,\n"
    "  bytes BLOB NOT NULL,\n"
    "  bytes_sha256 TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL\n"
    ")";
constexpr std::string_view insert_artifact_sql =
    "INSERT OR REPLACE INTO artifacts (key, name, compiler, arch, bytes, bytes_sha256, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr std::string_view lookup_artifact_sql =
    "SELECT key, name, compiler, arch, bytes, bytes_sha256, created_at FROM artifacts WHERE key = ?1";
constexpr std::string_view has_artifact_sql = "SELECT 1 FROM artifacts WHERE key = ?1";

// The row_plans table (schema version 4), written out like the artifacts table's.
constexpr std::string_view create_row_plans_sql =
    "CREATE TABLE row_plans (\n"
    "  descriptor TEXT NOT NULL,\n"
    "  fingerprint TEXT NOT NULL,\n"
    "  generator_version TEXT NOT NULL,\n"
    "  plan_json TEXT NOT NULL,\n"
    "  created_at TEXT NOT NULL,\n"
    "  PRIMARY KEY (descriptor, fingerprint, generator_version)\n"
    ")";
constexpr std::string_view insert_row_plan_sql =
    "INSERT OR REPLACE INTO row_plans (descriptor, fingerprint, generator_version, plan_json, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr std::string_view lookup_row_plan_sql =
    "SELECT descriptor, fingerprint, generator_version, plan_json, created_at FROM row_plans "
    "WHERE descriptor = ?1 AND fingerprint = ?2 AND generator_version = ?3";
constexpr std::string_view list_row_plans_sql =
    "SELECT descriptor, fingerprint, generator_version, plan_json, created_at FROM row_plans "
    "ORDER BY descriptor, fingerprint, generator_version";
constexpr auto busy_timeout = std::chrono::milliseconds(5000);

template <typename Value>
using MemberValue = std::remove_cvref_t<decltype(std::declval<Decision&>().*std::declval<Value>())>;

std::string_view sql_type(const Member& member) {
  return std::visit(
      [](auto pointer) -> std::string_view {
        using Value = MemberValue<decltype(pointer)>;
        if constexpr (std::is_same_v<Value, std::string>)
          return "TEXT";
        else if constexpr (std::is_same_v<Value, double>)
          return "REAL";
        else
          return "INTEGER";
      },
      member);
}

// The value a column holds in a file older than the column: what an upgrade fills it with.
std::string_view column_default(const Member& member) { return sql_type(member) == "TEXT" ? "''" : "0"; }

std::string column_list() {
  std::string text;
  for (const Field& field : fields) {
    if (!text.empty()) text += ", ";
    text += field.name;
  }
  return text;
}

// column_list() as a file of schema `version` answers it: a column it lacks reads its default.
std::string select_list(int version) {
  std::string text;
  for (const Field& field : fields) {
    if (!text.empty()) text += ", ";
    text += field.since <= version ? std::string(field.name)
                                   : fmt::format("{} AS {}", column_default(field.member), field.name);
  }
  return text;
}

std::string key_list() {
  std::string text;
  for (const Field& field : fields) {
    if (!field.key) continue;
    if (!text.empty()) text += ", ";
    text += field.name;
  }
  return text;
}

const std::string& create_table_sql() {
  static const std::string text = [] {
    std::string columns;
    for (const Field& field : fields) {
      columns += fmt::format("  {} {} NOT NULL,\n", field.name, sql_type(field.member));
    }
    return fmt::format("CREATE TABLE {} (\n{}  PRIMARY KEY ({})\n)", table_name, columns,
                       key_list());
  }();
  return text;
}

const std::string& insert_sql() {
  // REPLACE deletes the old row of the key and inserts the new one; the table has no
  // triggers or foreign keys that could notice the difference from an UPDATE.
  static const std::string text = [] {
    std::string parameters;
    for (std::size_t index = 1; index <= fields.size(); ++index) {
      parameters += fmt::format("{}?{}", index > 1 ? ", " : "", index);
    }
    return fmt::format("INSERT OR REPLACE INTO {} ({}) VALUES ({})", table_name, column_list(),
                       parameters);
  }();
  return text;
}

// One text per readable schema version, built on first use (index: the version).
using TextsByVersion = std::array<std::string, schema_version + 1>;

TextsByVersion texts_by_version(std::string (*make)(int version)) {
  TextsByVersion texts;
  for (int version = oldest_readable_schema_version; version <= schema_version; ++version)
    texts[static_cast<std::size_t>(version)] = make(version);
  return texts;
}

std::string select_sql(int version) {
  return fmt::format("SELECT {} FROM {}", select_list(version), table_name);
}

const std::string& lookup_sql(int version) {
  // Parameters are numbered in key order, so bind_key() of a probe row fills them.
  static const TextsByVersion texts = texts_by_version([](int version) {
    std::string condition;
    int parameter = 0;
    for (const Field& field : fields) {
      if (!field.key) continue;
      condition +=
          fmt::format("{}{} = ?{}", parameter > 0 ? " AND " : "", field.name, parameter + 1);
      ++parameter;
    }
    return fmt::format("{} WHERE {}", select_sql(version), condition);
  });
  return texts[static_cast<std::size_t>(version)];
}

const std::string& list_sql(int version) {
  static const TextsByVersion texts = texts_by_version(
      [](int version) { return fmt::format("{} ORDER BY {}", select_sql(version), key_list()); });
  return texts[static_cast<std::size_t>(version)];
}

// The ALTER TABLE texts that add the columns a file of schema `version` lacks.
std::vector<std::string> add_columns_sql(int version) {
  std::vector<std::string> texts;
  for (const Field& field : fields)
    if (field.since > version)
      texts.push_back(fmt::format("ALTER TABLE {} ADD COLUMN {} {} NOT NULL DEFAULT {}", table_name, field.name,
                                  sql_type(field.member), column_default(field.member)));
  return texts;
}

bool is_hex_key(const std::string& key) {
  return key.size() == 64 && key.find_first_not_of("0123456789abcdef") == std::string::npos;
}

void bind_field(Statement& statement, int index, const Decision& decision, const Field& field) {
  std::visit(
      [&](auto pointer) {
        const auto& value = decision.*pointer;
        using Value = MemberValue<decltype(pointer)>;
        if constexpr (std::is_same_v<Value, std::string>)
          statement.bind_text(index, value);
        else if constexpr (std::is_same_v<Value, double>)
          statement.bind_double(index, value);
        else
          statement.bind_int64(index, value);
      },
      field.member);
}

void bind_all(Statement& statement, const Decision& decision) {
  int index = 1;
  for (const Field& field : fields) bind_field(statement, index++, decision, field);
}

void bind_key(Statement& statement, const Decision& decision) {
  int index = 1;
  for (const Field& field : fields) {
    if (field.key) bind_field(statement, index++, decision, field);
  }
}

// Reads a row whose columns are column_list(), in that order.
Decision read_row(const Statement& statement) {
  Decision decision;
  int index = 0;
  for (const Field& field : fields) {
    std::visit(
        [&](auto pointer) {
          auto& value = decision.*pointer;
          using Value = MemberValue<decltype(pointer)>;
          if constexpr (std::is_same_v<Value, std::string>)
            value = statement.column_text(index);
          else if constexpr (std::is_same_v<Value, double>)
            value = statement.column_double(index);
          else
            value = static_cast<int>(statement.column_int64(index));
        },
        field.member);
    ++index;
  }
  return decision;
}

void validate(const Decision& decision) {
  for (const Field& field : fields) {
    std::visit(
        [&](auto pointer) {
          const auto& value = decision.*pointer;
          using Value = MemberValue<decltype(pointer)>;
          const std::string name(field.name);
          if constexpr (std::is_same_v<Value, std::string>) {
            if (field.rule == Rule::non_empty && value.empty()) {
              throw InvalidArgument(name, fmt::format("decision field '{}' is empty", name));
            }
            if (field.rule == Rule::json_object &&
                !nlohmann::json::parse(value, nullptr, false).is_object()) {
              throw InvalidArgument(
                  name, fmt::format("decision field '{}' is not a JSON object: '{}'", name, value));
            }
            if (field.rule == Rule::empty_or_hex_key && !value.empty() && !is_hex_key(value)) {
              throw InvalidArgument(
                  name, fmt::format("decision field '{}' is '{}': it must be empty or 64 lowercase hex "
                                    "digits (an artifact's SHA-256 key)", name, value));
            }
          } else if (field.rule == Rule::non_negative) {
            // A NaN would be stored as NULL by SQLite and then break the NOT NULL constraint.
            if (!(std::isfinite(static_cast<double>(value)) && value >= 0)) {
              throw InvalidArgument(
                  name, fmt::format("decision field '{}' must be finite and non-negative, not {}",
                                    name, value));
            }
          }
        },
        field.member);
  }
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  std::array<char, 32> text{};
  const std::size_t size = std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &parts);
  return std::string(text.data(), size);
}

// Inserts (or replaces) an artifact's row inside the caller's transaction, with the SHA-256 of
// its bytes; an empty created_at is now.
void insert_artifact(Database& database, const Artifact& artifact) {
  Statement statement(database, insert_artifact_sql);
  statement.bind_text(1, artifact.key);
  statement.bind_text(2, artifact.name);
  statement.bind_text(3, artifact.compiler);
  statement.bind_text(4, artifact.arch);
  statement.bind_blob(5, artifact.bytes);
  statement.bind_text(6, sha256_hex(std::string_view(artifact.bytes.data(), artifact.bytes.size())));
  statement.bind_text(7, artifact.created_at.empty() ? utc_now() : artifact.created_at);
  statement.step();
}

// Inserts (or replaces) a row plan inside the caller's transaction; an empty created_at is now.
void insert_row_plan(Database& database, const RowPlan& plan) {
  Statement statement(database, insert_row_plan_sql);
  statement.bind_text(1, plan.descriptor);
  statement.bind_text(2, plan.fingerprint);
  statement.bind_text(3, plan.generator_version);
  statement.bind_text(4, plan.plan_json);
  statement.bind_text(5, plan.created_at.empty() ? utc_now() : plan.created_at);
  statement.step();
}

// Why a file is not used; thrown inside open() and turned into its one warning there.
struct Unusable {
  std::string problem;  // completes "cache '<path>' ...", e.g. "does not exist"
};

std::string query_text(const Database& database, const std::string& sql) {
  Statement statement(database, sql);
  return statement.step() == StepResult::row ? statement.column_text(0) : std::string();
}

// Throws Unusable when the file's identity names another program or a newer lowbit.
void check_identity(std::int64_t id, std::int64_t version) {
  if (id != 0 && id != application_id) {
    throw Unusable{
        fmt::format("belongs to another program (application_id 0x{:08X}; lowbit's is 0x{:08X})",
                    static_cast<std::uint32_t>(id), application_id)};
  }
  if (id == application_id && version > schema_version) {
    throw Unusable{fmt::format(
        "was written by a newer lowbit (schema version {}; this build reads version {})", version,
        schema_version)};
  }
}

// Judges an existing file by its 100-byte header before SQLite opens it. SQLite only notices a
// non-database at its first read, and opening a WAL database, even read-only, creates its
// -wal and -shm files; a foreign file is better left without either. The header can be stale
// while a WAL holds newer pages, so inspect() asks SQLite the same questions again.
// Returns true when the header already names lowbit's current schema.
bool check_header(const std::filesystem::path& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error || size == 0) return false;  // unreadable: SQLite reports it; empty: a blank database
  constexpr std::string_view signature("SQLite format 3\0", 16);
  std::array<unsigned char, 100> header{};
  // Plain read(2): this runs on every cache hit, and a cold ifstream costs more than the read.
  const int descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const ssize_t length = descriptor < 0 ? -1 : ::read(descriptor, header.data(), header.size());
  if (descriptor >= 0) ::close(descriptor);
  if (length != static_cast<ssize_t>(header.size()) ||
      std::string_view(reinterpret_cast<const char*>(header.data()), signature.size()) !=
          signature) {
    throw Unusable{"is not an SQLite database"};
  }
  // The file format stores both as 4-byte big-endian signed integers.
  const auto big_endian = [&](std::size_t offset) {
    const std::uint32_t bits =
        std::uint32_t{header[offset]} << 24 | std::uint32_t{header[offset + 1]} << 16 |
        std::uint32_t{header[offset + 2]} << 8 | std::uint32_t{header[offset + 3]};
    return static_cast<std::int64_t>(static_cast<std::int32_t>(bits));
  };
  constexpr std::size_t user_version_offset = 60;
  constexpr std::size_t application_id_offset = 68;
  const std::int64_t id = big_endian(application_id_offset);
  const std::int64_t version = big_endian(user_version_offset);
  check_identity(id, version);
  return id == application_id && version == schema_version;
}

// blank: may become lowbit's file; previous: an older readable schema version (1: decisions,
// no artifacts; 2: no artifact_key column; 3: no row_plans), read as is and upgraded by a writer;
// current.
enum class State { blank, previous, current };

struct Inspected {
  State state = State::blank;
  int version = 0;  // the file's schema version (0 when blank)
};

// Decides whether the connected file is lowbit's (current or previous schema) or a blank file
// that may become one; throws Unusable otherwise. Only reads.
// full_check runs PRAGMA quick_check (reads every page). Writers run it before they add to a
// file; readers skip it to keep get_kernel's cache hit under a millisecond: a damaged page
// they touch makes the lookup fail, which is a warning and a miss all the same.
Inspected inspect(const Database& database, bool full_check) {
  // One statement reads one snapshot. Read one by one, the three could straddle another
  // process's schema creation and show its tables without its application_id.
  Statement identity(database,
                     "SELECT id.application_id, version.user_version, "
                     "(SELECT count(*) FROM sqlite_master) "
                     "FROM pragma_application_id AS id, pragma_user_version AS version");
  try {
    if (identity.step() != StepResult::row) throw Unusable{"has no readable header"};
  } catch (const CacheError& error) {
    if ((error.code() & 0xff) == SQLITE_NOTADB) throw Unusable{"is not an SQLite database"};
    throw;
  }
  const std::int64_t id = identity.column_int64(0);
  const std::int64_t version = identity.column_int64(1);
  const std::int64_t objects = identity.column_int64(2);
  identity.reset();  // ends the read, so the checks below may see a newer snapshot
  check_identity(id, version);
  if (objects == 0 && version == 0) return {State::blank, 0};
  if (id == 0)
    throw Unusable{"is an SQLite database of another program (no lowbit application_id)"};
  if (version < oldest_readable_schema_version || version > schema_version) {
    throw Unusable{fmt::format("has lowbit's application_id but schema version {}", version)};
  }
  // quick_check reads every page (the cache is small) but skips the costly index cross-checks
  // of integrity_check; it answers one row "ok" or rows describing the damage.
  if (full_check) {
    const std::string check = query_text(database, "PRAGMA quick_check");
    if (check != "ok") throw Unusable{fmt::format("is damaged (PRAGMA quick_check: {})", check)};
  }
  const int readable = static_cast<int>(version);
  try {
    Statement probe(database, list_sql(readable));
  } catch (const CacheError& error) {
    throw Unusable{fmt::format("lacks the decisions table of schema version {} ({})",
                               version, error.sqlite_message())};
  }
  if (version >= 2) {
    try {
      Statement probe(database, lookup_artifact_sql);
    } catch (const CacheError& error) {
      throw Unusable{fmt::format("lacks the artifacts table of schema version {} ({})",
                                 version, error.sqlite_message())};
    }
  }
  if (version >= 4) {
    try {
      Statement probe(database, lookup_row_plan_sql);
    } catch (const CacheError& error) {
      throw Unusable{fmt::format("lacks the row_plans table of schema version {} ({})",
                                 version, error.sqlite_message())};
    }
  }
  return {version < schema_version ? State::previous : State::current, readable};
}

void create_schema(Database& database) {
  database.exec(fmt::format("PRAGMA application_id = {}", application_id));
  database.exec(fmt::format("PRAGMA user_version = {}", schema_version));
  database.exec(create_table_sql());
  database.exec(std::string(create_artifacts_sql));
  database.exec(std::string(create_row_plans_sql));
}

// Version 1, 2 or 3 -> 4: version 2 added the artifacts table, version 3 the decisions'
// artifact_key column (an old row's is empty), version 4 the row_plans table; no row changes. Run inside the writer's
// transaction, so a crash leaves the old version whole and another writer that waited for the
// lock finds the upgrade done.
void upgrade_schema(Database& database, int version) {
  if (version < 2) database.exec(std::string(create_artifacts_sql));
  for (const std::string& text : add_columns_sql(version)) database.exec(text);
  if (version < 4) database.exec(std::string(create_row_plans_sql));
  database.exec(fmt::format("PRAGMA user_version = {}", schema_version));
}

// A database connection and the schema version of its file.
struct Opened {
  std::unique_ptr<Database> database;
  int version = schema_version;
};

// WAL lets readers go on while one process writes. The mode is stored in the file, so only
// the first opener changes it. Where WAL is impossible (no shared memory, e.g. some network
// file systems) SQLite keeps its rollback journal, which is slower but just as safe.
void prefer_wal(Database& database) {
  // The switch needs every other connection off the file for a moment, and SQLite answers
  // SQLITE_BUSY at once instead of calling the busy handler (the switching connection already
  // holds a read lock, and waiting while holding one could deadlock). Hence the retries; if
  // others keep the file busy the whole time, a later open will switch it.
  const auto deadline = std::chrono::steady_clock::now() + busy_timeout;
  while (query_text(database, "PRAGMA journal_mode") != "wal") {
    try {
      query_text(database, "PRAGMA journal_mode = WAL");
      return;
    } catch (const CacheError& error) {
      const int primary = error.code() & 0xff;
      if (primary != SQLITE_BUSY && primary != SQLITE_LOCKED) throw;
      if (std::chrono::steady_clock::now() > deadline) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

Opened open_read_only(const std::string& path, bool immutable) {
  if (!std::filesystem::exists(path)) throw Unusable{"does not exist"};
  if (std::filesystem::is_directory(path)) throw Unusable{"is a directory"};
  const bool header_is_current = check_header(path);
  Opened opened{std::make_unique<Database>(path, SQLITE_OPEN_READONLY, immutable), schema_version};
  opened.database->set_busy_timeout(busy_timeout);
  // A header that names lowbit's current schema settles it: application_id is written with
  // the schema and never unset. Skipping the query keeps a cache hit's open short; only a
  // header still stale behind a WAL (a file created moments ago) or an older file needs
  // SQLite's answer. An older file is read as it is: a reader never upgrades.
  if (!header_is_current) {
    const Inspected inspected = inspect(*opened.database, false);
    if (inspected.state == State::blank) throw Unusable{"is empty and was opened read-only"};
    opened.version = inspected.version;
  }
  return opened;
}

Opened open_read_write(const std::string& path) {
  const std::filesystem::path file(path);
  std::error_code error;
  if (file.has_parent_path()) {
    std::filesystem::create_directories(file.parent_path(), error);
    if (error) {
      throw Unusable{fmt::format("cannot create its directory '{}': {}",
                                 file.parent_path().string(), error.message())};
    }
  }
  State state = State::blank;
  if (std::filesystem::exists(file)) {
    if (std::filesystem::is_directory(file)) throw Unusable{"is a directory"};
    check_header(file);
    // Judge an existing file through a read-only connection first: a writable connection
    // that reads a foreign WAL database can checkpoint that database's WAL into it on close.
    Database probe(path, SQLITE_OPEN_READONLY);
    probe.set_busy_timeout(busy_timeout);
    state = inspect(probe, true).state;
  }
  auto database = std::make_unique<Database>(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  database->set_busy_timeout(busy_timeout);
  if (state != State::current) {
    // Several processes may find the same blank (or older) file; the write lock makes one of
    // them create (or upgrade) the schema and the others find it done when their turn comes.
    Transaction transaction(*database);
    const Inspected locked = inspect(*database, true);
    if (locked.state == State::blank) create_schema(*database);
    if (locked.state == State::previous) upgrade_schema(*database, locked.version);
    transaction.commit();
  }
  prefer_wal(*database);
  // In WAL mode NORMAL loses at most the last commits on power loss, never consistency;
  // a lost decision is only re-tuned.
  database->exec("PRAGMA synchronous = NORMAL");
  return Opened{std::move(database), schema_version};
}

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::string password_home() {
  const long suggested = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::string buffer(suggested > 0 ? static_cast<std::size_t>(suggested) : 16384, '\0');
  passwd entry{};
  passwd* result = nullptr;
  if (getpwuid_r(getuid(), &entry, buffer.data(), buffer.size(), &result) != 0 ||
      result == nullptr || result->pw_dir == nullptr) {
    return "";
  }
  return result->pw_dir;
}

}  // namespace

DecisionCache::DecisionCache(std::string path, OpenMode mode)
    : path_(std::move(path)), mode_(mode) {}

DecisionCache::~DecisionCache() { checkpoint_if_writer(); }
DecisionCache::DecisionCache(DecisionCache&& other) noexcept = default;
DecisionCache& DecisionCache::operator=(DecisionCache&& other) noexcept {
  if (this != &other) {
    checkpoint_if_writer();
    path_ = std::move(other.path_);
    mode_ = other.mode_;
    database_ = std::move(other.database_);
    file_version_ = other.file_version_;
    warned_store_refused_ = other.warned_store_refused_;
  }
  return *this;
}

void DecisionCache::checkpoint_if_writer() noexcept {
  if (mode_ == OpenMode::read_write && database_)
    sqlite3_wal_checkpoint_v2(database_->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

DecisionCache DecisionCache::open(const std::string& path, OpenMode mode) {
  DecisionCache cache(path, mode);
  try {
    Opened opened =
        mode == OpenMode::read_write ? open_read_write(path) : open_read_only(path, mode == OpenMode::immutable);
    cache.database_ = std::move(opened.database);
    cache.file_version_ = opened.version;
  } catch (const Unusable& unusable) {
    warn(fmt::format("cache '{}' {}; it is ignored (lookups miss, nothing is stored)", path,
                     unusable.problem));
  } catch (const CacheError& error) {
    warn(fmt::format("{}; the cache is ignored (lookups miss, nothing is stored)", error.what()));
  } catch (const std::filesystem::filesystem_error& error) {
    warn(
        fmt::format("cache '{}' cannot be examined: {}; it is ignored (lookups miss, nothing is "
                    "stored)",
                    path, error.what()));
  }
  return cache;
}

bool DecisionCache::usable() const { return database_ != nullptr; }

bool DecisionCache::refuses_stores(std::string_view what) {
  if (mode_ == OpenMode::read_write && database_) return false;
  if (!warned_store_refused_) {
    warn(fmt::format("cache '{}' is {}; {} are not stored", path_,
                     mode_ != OpenMode::read_write ? "open read-only" : "unusable", what));
    warned_store_refused_ = true;
  }
  return true;
}

const std::string& DecisionCache::path() const { return path_; }

OpenMode DecisionCache::mode() const { return mode_; }

std::optional<Decision> DecisionCache::lookup(const std::string& descriptor,
                                              const std::string& fingerprint,
                                              const std::string& generator_version) const {
  if (!database_) return std::nullopt;
  Decision key;
  key.descriptor = descriptor;
  key.fingerprint = fingerprint;
  key.generator_version = generator_version;
  try {
    // Preparing per call costs microseconds; a lookup happens once per problem shape.
    Statement statement(*database_, lookup_sql(file_version_));
    bind_key(statement, key);
    if (statement.step() == StepResult::row) return read_row(statement);
  } catch (const CacheError& error) {
    warn(fmt::format("{}; treated as a miss", error.what()));
  }
  return std::nullopt;
}

bool DecisionCache::store(const Decision& decision) {
  validate(decision);
  if (refuses_stores("decisions")) return false;
  Decision row = decision;
  if (row.created_at.empty()) row.created_at = utc_now();
  try {
    Transaction transaction(*database_);
    Statement statement(*database_, insert_sql());
    bind_all(statement, row);
    statement.step();
    transaction.commit();
    return true;
  } catch (const CacheError& error) {
    warn(fmt::format("{}; the decision for '{}' is not stored", error.what(), row.descriptor));
    return false;
  }
}

std::vector<Decision> DecisionCache::list() const {
  std::vector<Decision> rows;
  if (!database_) return rows;
  try {
    Statement statement(*database_, list_sql(file_version_));
    while (statement.step() == StepResult::row) rows.push_back(read_row(statement));
  } catch (const CacheError& error) {
    warn(fmt::format("{}; listing only {} rows", error.what(), rows.size()));
  }
  return rows;
}

namespace {

void validate(const Artifact& artifact) {
  if (!is_hex_key(artifact.key))
    throw InvalidArgument("key", fmt::format("artifact key '{}' is not 64 lowercase hex digits (a SHA-256)", artifact.key));
  if (artifact.name.empty()) throw InvalidArgument("name", "artifact field 'name' is empty");
  if (artifact.compiler.empty()) throw InvalidArgument("compiler", "artifact field 'compiler' is empty");
  if (artifact.arch.empty()) throw InvalidArgument("arch", "artifact field 'arch' is empty");
  if (artifact.bytes.empty()) throw InvalidArgument("bytes", "artifact has no bytes");
}

}  // namespace

std::optional<Artifact> DecisionCache::lookup_artifact(const std::string& key) const {
  if (!database_ || file_version_ < 2) return std::nullopt;
  try {
    Statement statement(*database_, lookup_artifact_sql);
    statement.bind_text(1, key);
    if (statement.step() != StepResult::row) return std::nullopt;
    Artifact artifact{statement.column_text(0), statement.column_text(1), statement.column_text(2),
                      statement.column_text(3), statement.column_blob(4), statement.column_text(6)};
    const std::string stored_hash = statement.column_text(5);
    if (sha256_hex(std::string_view(artifact.bytes.data(), artifact.bytes.size())) != stored_hash) {
      warn(fmt::format("cache '{}': the artifact {} ({}) is damaged (its bytes do not match their SHA-256); "
                       "treated as a miss",
                       path_, key, artifact.name));
      return std::nullopt;
    }
    return artifact;
  } catch (const CacheError& error) {
    warn(fmt::format("{}; treated as a miss", error.what()));
  }
  return std::nullopt;
}

bool DecisionCache::has_artifact(const std::string& key) const {
  if (!database_ || file_version_ < 2) return false;
  try {
    Statement statement(*database_, has_artifact_sql);
    statement.bind_text(1, key);
    return statement.step() == StepResult::row;
  } catch (const CacheError& error) {
    warn(fmt::format("{}; treated as a miss", error.what()));
  }
  return false;
}

bool DecisionCache::store_artifact(const Artifact& artifact) {
  validate(artifact);
  if (refuses_stores("artifacts")) return false;
  try {
    Transaction transaction(*database_);
    insert_artifact(*database_, artifact);
    transaction.commit();
    return true;
  } catch (const CacheError& error) {
    warn(fmt::format("{}; the artifact {} ({}) is not stored", error.what(), artifact.key, artifact.name));
    return false;
  }
}

namespace {

void validate(const RowPlan& plan) {
  for (const auto& [name, value] : {std::pair<std::string_view, const std::string*>{"descriptor", &plan.descriptor},
                                    {"fingerprint", &plan.fingerprint},
                                    {"generator_version", &plan.generator_version}})
    if (value->empty()) throw InvalidArgument(std::string(name), fmt::format("row plan field '{}' is empty", name));
  if (!nlohmann::json::parse(plan.plan_json, nullptr, false).is_object())
    throw InvalidArgument("plan_json", fmt::format("row plan field 'plan_json' is not a JSON object: '{}'", plan.plan_json));
}

RowPlan read_row_plan(const Statement& statement) {
  return {statement.column_text(0), statement.column_text(1), statement.column_text(2), statement.column_text(3),
          statement.column_text(4)};
}

}  // namespace

std::optional<RowPlan> DecisionCache::lookup_row_plan(const std::string& descriptor, const std::string& fingerprint,
                                                      const std::string& generator_version) const {
  if (!database_ || file_version_ < 4) return std::nullopt;
  try {
    Statement statement(*database_, lookup_row_plan_sql);
    statement.bind_text(1, descriptor);
    statement.bind_text(2, fingerprint);
    statement.bind_text(3, generator_version);
    if (statement.step() == StepResult::row) return read_row_plan(statement);
  } catch (const CacheError& error) {
    warn(fmt::format("{}; treated as a miss", error.what()));
  }
  return std::nullopt;
}

bool DecisionCache::store_row_plan(const RowPlan& plan) {
  validate(plan);
  if (refuses_stores("row plans")) return false;
  try {
    Transaction transaction(*database_);
    insert_row_plan(*database_, plan);
    transaction.commit();
    return true;
  } catch (const CacheError& error) {
    warn(fmt::format("{}; the row plan of '{}' is not stored", error.what(), plan.descriptor));
    return false;
  }
}

std::vector<RowPlan> DecisionCache::list_row_plans() const {
  std::vector<RowPlan> plans;
  if (!database_ || file_version_ < 4) return plans;
  try {
    Statement statement(*database_, list_row_plans_sql);
    while (statement.step() == StepResult::row) plans.push_back(read_row_plan(statement));
  } catch (const CacheError& error) {
    warn(fmt::format("{}; listing only {} row plans", error.what(), plans.size()));
  }
  return plans;
}

std::vector<std::string> DecisionCache::artifact_keys() const {
  std::vector<std::string> keys;
  if (!database_ || file_version_ < 2) return keys;
  try {
    Statement statement(*database_, "SELECT key FROM artifacts ORDER BY key");
    while (statement.step() == StepResult::row) keys.push_back(statement.column_text(0));
  } catch (const CacheError& error) {
    warn(fmt::format("{}; listing only {} artifacts", error.what(), keys.size()));
  }
  return keys;
}

void DecisionCache::export_to(const std::string& out_path) const {
  if (!database_) throw InvalidArgument("db", fmt::format("cache '{}' is unusable; there is nothing to export", path_));
  std::error_code error;
  if (std::filesystem::exists(out_path, error))
    throw InvalidArgument("out", fmt::format("'{}' exists; export writes a new file", out_path));
  try {
    Statement statement(*database_, "VACUUM INTO ?1");
    statement.bind_text(1, out_path);
    statement.step();
  } catch (const CacheError&) {
    std::filesystem::remove(out_path, error);
    throw;
  }
}

namespace {

// Whether the incoming decision takes the key from the target's under `rule`.
bool incoming_wins(const Decision& target, const Decision& incoming, ConflictRule rule) {
  if (rule == ConflictRule::faster) return incoming.median_us < target.median_us;
  if (rule == ConflictRule::newer) return incoming.created_at > target.created_at;  // ISO-8601 UTC sorts as text
  return false;
}

bool incoming_wins(const RowPlan& target, const RowPlan& incoming, ConflictRule rule) {
  return rule != ConflictRule::keep && incoming.created_at > target.created_at;
}

// Counts an incoming row (decision or row plan) against the target's row of its key, if any, as
// added, replaced or kept under `rule`; returns whether it is to be written.
template <class Row>
bool settle(const std::optional<Row>& present, const Row& incoming, ConflictRule rule, int& added, int& replaced,
            int& kept) {
  if (!present) return ++added, true;
  if (*present == incoming || !incoming_wins(*present, incoming, rule)) return ++kept, false;
  return ++replaced, true;
}

}  // namespace

void DecisionCache::require_merge_target(const std::string& source_path) const {
  if (mode_ != OpenMode::read_write || !database_)
    throw InvalidArgument("db", fmt::format("cache '{}' is {}; nothing can be merged into it", path_,
                                            database_ ? "open read-only" : "unusable"));
  if (same_file(path_, source_path))
    throw InvalidArgument("from", fmt::format("'{}' is the target cache itself", source_path));
}

MergeCounts DecisionCache::merge_from(const std::string& source_path, ConflictRule rule) {
  require_merge_target(source_path);  // before the source is opened
  return merge_from(open(source_path, OpenMode::read_only), rule);
}

MergeCounts DecisionCache::merge_from(const DecisionCache& source, ConflictRule rule) {
  require_merge_target(source.path());
  if (!source.usable())
    throw InvalidArgument("from", fmt::format("cache '{}' cannot be read (the warning above says why)", source.path()));
  MergeCounts counts;
  Transaction transaction(*database_);
  for (const Decision& incoming : source.list()) {
    validate(incoming);
    if (!settle(lookup(incoming.descriptor, incoming.fingerprint, incoming.generator_version), incoming, rule,
                counts.decisions_added, counts.decisions_replaced, counts.decisions_kept))
      continue;
    Statement insert(*database_, insert_sql());
    bind_all(insert, incoming);
    insert.step();
  }
  for (const std::string& key : source.artifact_keys()) {
    if (has_artifact(key)) continue;
    const std::optional<Artifact> artifact = source.lookup_artifact(key);  // a damaged one is warned of there
    if (!artifact) {
      ++counts.artifacts_damaged;
      continue;
    }
    insert_artifact(*database_, *artifact);
    ++counts.artifacts_added;
  }
  for (const RowPlan& incoming : source.list_row_plans()) {
    validate(incoming);
    if (settle(lookup_row_plan(incoming.descriptor, incoming.fingerprint, incoming.generator_version), incoming, rule,
               counts.row_plans_added, counts.row_plans_replaced, counts.row_plans_kept))
      insert_row_plan(*database_, incoming);
  }
  transaction.commit();
  return counts;
}

bool same_file(const std::string& first, const std::string& second) {
  std::error_code error;
  if (std::filesystem::equivalent(first, second, error)) return true;
  const std::filesystem::path a = std::filesystem::weakly_canonical(first, error);
  if (error) return false;
  const std::filesystem::path b = std::filesystem::weakly_canonical(second, error);
  return !error && a == b;
}

std::string default_cache_path() {
  if (std::string path = environment("LOWBIT_CACHE"); !path.empty()) return path;
  // The XDG base-directory specification says a relative XDG_CACHE_HOME is invalid and ignored.
  if (std::string xdg = environment("XDG_CACHE_HOME"); !xdg.empty() && xdg.front() == '/') {
    return (std::filesystem::path(xdg) / "lowbit" / "cache.sqlite").string();
  }
  std::string home = environment("HOME");
  if (home.empty()) home = password_home();
  if (home.empty()) {
    throw Error("cannot choose a cache path: set LOWBIT_CACHE, XDG_CACHE_HOME or HOME");
  }
  return (std::filesystem::path(home) / ".cache" / "lowbit" / "cache.sqlite").string();
}

}  // namespace lowbit::cache
