// Small RAII wrappers around the SQLite C API: a connection, a prepared statement, a write
// transaction. Only what the cache needs; every SQLite failure becomes a CacheError.
//
// Thread-safety rule: a Database and the Statements prepared on it belong to one thread at a
// time. SQLite's own mutex keeps a shared connection from crashing, but the last error message
// and each statement's cursor are per connection, so two threads sharing one would read each
// other's errors and rows. Give each thread its own Database; SQLite's file locks then
// serialise the threads exactly as they serialise separate processes.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/errors.h"

namespace lowbit::cache {

// A failure reported by SQLite. what() names the file, what was being done and SQLite's own
// message; code() is SQLite's extended result code (e.g. SQLITE_NOTADB, SQLITE_BUSY).
class CacheError : public Error {
 public:
  CacheError(std::string path, int code, std::string_view context, std::string_view sqlite_message);
  const std::string& path() const { return path_; }
  int code() const { return code_; }
  const std::string& sqlite_message() const { return sqlite_message_; }

 private:
  std::string path_;
  int code_;
  std::string sqlite_message_;
};

// One connection. The file is closed in the destructor.
class Database {
 public:
  // flags are sqlite3_open_v2's SQLITE_OPEN_* flags. Throws CacheError when SQLite refuses
  // (e.g. a missing file without SQLITE_OPEN_CREATE). SQLite reads the file lazily, so a file
  // that is not a database only fails at the first statement, with SQLITE_NOTADB.
  // immutable (with SQLITE_OPEN_READONLY): the caller promises that nothing changes the file
  // while it is open, and SQLite takes no locks and keeps no WAL index (its "immutable" URI
  // parameter): a shipped, read-only cache.
  Database(std::string path, int flags, bool immutable = false);
  ~Database();
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more SQL statements that return no rows needed by the caller.
  void exec(const std::string& sql);
  // How long a statement waits for another connection's lock before failing with SQLITE_BUSY.
  void set_busy_timeout(std::chrono::milliseconds timeout);
  // SQLite's message for the most recent failure on this connection.
  std::string last_error_message() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return handle_; }

  // Throws a CacheError carrying this connection's current error message.
  [[noreturn]] void fail(int code, std::string_view context) const;

 private:
  void close() noexcept;

  std::string path_;
  sqlite3* handle_ = nullptr;
};

enum class StepResult { row, done };

// One prepared statement; finalized in the destructor. It must not outlive its Database.
// Bind indices start at 1 and column indices at 0, as in SQLite's C API.
class Statement {
 public:
  Statement(const Database& database, std::string_view sql);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind_int64(int index, std::int64_t value);
  void bind_double(int index, double value);
  // The text is copied by SQLite, so the caller's string may die before step().
  void bind_text(int index, std::string_view value);
  // Bytes as a BLOB (copied by SQLite, as text is).
  void bind_blob(int index, const std::vector<char>& value);
  void bind_null(int index);

  // Advances to the next row; throws CacheError on any result other than a row or the end.
  StepResult step();

  std::int64_t column_int64(int index) const;
  double column_double(int index) const;
  std::string column_text(int index) const;
  std::vector<char> column_blob(int index) const;
  bool column_is_null(int index) const;

  // Rewinds the statement so it can be stepped again; bindings are kept.
  void reset();
  void clear_bindings();

 private:
  const Database* database_;
  sqlite3_stmt* handle_ = nullptr;
};

// A write transaction: BEGIN IMMEDIATE in the constructor, ROLLBACK in the destructor unless
// commit() ran. IMMEDIATE takes the write lock at once, waiting through the busy timeout.
// A deferred transaction that reads first and writes later can instead fail half-way: in WAL
// mode, if another writer committed since its read began, the upgrade fails at once with
// SQLITE_BUSY_SNAPSHOT, which no amount of waiting can cure.
class Transaction {
 public:
  explicit Transaction(Database& database);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit();

 private:
  Database& database_;
  bool finished_ = false;
};

}  // namespace lowbit::cache
