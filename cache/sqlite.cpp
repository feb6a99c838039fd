#include "cache/sqlite.h"

#include <fmt/format.h>

#include <climits>
#include <utility>

namespace lowbit::cache {

CacheError::CacheError(std::string path, int code, std::string_view context,
                       std::string_view sqlite_message)
    : Error(fmt::format("cache '{}': {}: {}", path, context, sqlite_message)),
      path_(std::move(path)),
      code_(code),
      sqlite_message_(sqlite_message) {}

namespace {

// path as an SQLite URI with ?immutable=1; '%', '?' and '#' in the path are percent-encoded.
std::string immutable_uri(const std::string& path) {
  std::string uri = "file:";
  for (char character : path) {
    if (character == '%')
      uri += "%25";
    else if (character == '?')
      uri += "%3F";
    else if (character == '#')
      uri += "%23";
    else
      uri += character;
  }
  return uri + "?immutable=1";
}

}  // namespace

Database::Database(std::string path, int flags, bool immutable) : path_(std::move(path)) {
  const std::string name = immutable ? immutable_uri(path_) : path_;
  const int code = sqlite3_open_v2(name.c_str(), &handle_, immutable ? flags | SQLITE_OPEN_URI : flags, nullptr);
  if (code != SQLITE_OK) {
    // On most failures SQLite still allocates a handle that holds the message and must be closed.
    std::string message = handle_ != nullptr ? sqlite3_errmsg(handle_) : sqlite3_errstr(code);
    close();
    throw CacheError(path_, code, "cannot open", message);
  }
  // Extended codes tell SQLITE_BUSY_SNAPSHOT from SQLITE_BUSY and SQLITE_CANTOPEN_* apart.
  sqlite3_extended_result_codes(handle_, 1);
}

Database::~Database() { close(); }

Database::Database(Database&& other) noexcept
    : path_(std::move(other.path_)), handle_(std::exchange(other.handle_, nullptr)) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

void Database::close() noexcept {
  // close_v2 defers the close until every statement is finalized instead of failing with
  // SQLITE_BUSY, so a destructor never leaks the connection.
  if (handle_ != nullptr) sqlite3_close_v2(std::exchange(handle_, nullptr));
}

void Database::exec(const std::string& sql) {
  char* message = nullptr;
  const int code = sqlite3_exec(handle_, sql.c_str(), nullptr, nullptr, &message);
  if (code != SQLITE_OK) {
    std::string text = message != nullptr ? message : sqlite3_errstr(code);
    sqlite3_free(message);
    throw CacheError(path_, code, fmt::format("cannot run '{}'", sql), text);
  }
}

void Database::set_busy_timeout(std::chrono::milliseconds timeout) {
  const auto milliseconds = timeout.count() > INT_MAX ? INT_MAX : static_cast<int>(timeout.count());
  const int code = sqlite3_busy_timeout(handle_, milliseconds);
  if (code != SQLITE_OK) fail(code, "cannot set the busy timeout");
}

std::string Database::last_error_message() const {
  return handle_ != nullptr ? sqlite3_errmsg(handle_) : "no open connection";
}

void Database::fail(int code, std::string_view context) const {
  throw CacheError(path_, code, context, last_error_message());
}

Statement::Statement(const Database& database, std::string_view sql) : database_(&database) {
  const int code = sqlite3_prepare_v2(database.handle(), sql.data(), static_cast<int>(sql.size()),
                                      &handle_, nullptr);
  if (code != SQLITE_OK) database.fail(code, fmt::format("cannot prepare '{}'", sql));
}

Statement::~Statement() { sqlite3_finalize(handle_); }

Statement::Statement(Statement&& other) noexcept
    : database_(other.database_), handle_(std::exchange(other.handle_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(handle_);
    database_ = other.database_;
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

void Statement::bind_int64(int index, std::int64_t value) {
  const int code = sqlite3_bind_int64(handle_, index, value);
  if (code != SQLITE_OK) database_->fail(code, fmt::format("cannot bind parameter {}", index));
}

void Statement::bind_double(int index, double value) {
  const int code = sqlite3_bind_double(handle_, index, value);
  if (code != SQLITE_OK) database_->fail(code, fmt::format("cannot bind parameter {}", index));
}

void Statement::bind_text(int index, std::string_view value) {
  const int code = sqlite3_bind_text64(handle_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                                       SQLITE_UTF8);
  if (code != SQLITE_OK) database_->fail(code, fmt::format("cannot bind parameter {}", index));
}

void Statement::bind_blob(int index, const std::vector<char>& value) {
  const int code = sqlite3_bind_blob64(handle_, index, value.data(), value.size(), SQLITE_TRANSIENT);
  if (code != SQLITE_OK) database_->fail(code, fmt::format("cannot bind parameter {}", index));
}

void Statement::bind_null(int index) {
  const int code = sqlite3_bind_null(handle_, index);
  if (code != SQLITE_OK) database_->fail(code, fmt::format("cannot bind parameter {}", index));
}

StepResult Statement::step() {
  const int code = sqlite3_step(handle_);
  if (code == SQLITE_ROW) return StepResult::row;
  if (code == SQLITE_DONE) return StepResult::done;
  database_->fail(code, fmt::format("cannot run '{}'", sqlite3_sql(handle_)));
}

std::int64_t Statement::column_int64(int index) const {
  return sqlite3_column_int64(handle_, index);
}

double Statement::column_double(int index) const { return sqlite3_column_double(handle_, index); }

std::string Statement::column_text(int index) const {
  // Ask for the text before its size: the conversion to text is what determines the size.
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(handle_, index));
  const int size = sqlite3_column_bytes(handle_, index);
  return text != nullptr ? std::string(text, static_cast<std::size_t>(size)) : std::string();
}

std::vector<char> Statement::column_blob(int index) const {
  // As for text: the pointer first, then the size. A zero-length BLOB gives a null pointer.
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(handle_, index));
  const int size = sqlite3_column_bytes(handle_, index);
  return bytes != nullptr ? std::vector<char>(bytes, bytes + size) : std::vector<char>();
}

bool Statement::column_is_null(int index) const {
  return sqlite3_column_type(handle_, index) == SQLITE_NULL;
}

void Statement::reset() {
  // reset() returns the error of the last step again; that error was already thrown by step().
  sqlite3_reset(handle_);
}

void Statement::clear_bindings() { sqlite3_clear_bindings(handle_); }

Transaction::Transaction(Database& database) : database_(database) {
  database_.exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  // SQLite may already have rolled back on its own after an I/O or full-disk error; a second
  // ROLLBACK would only fail, so ask whether a transaction is still open.
  if (!finished_ && sqlite3_get_autocommit(database_.handle()) == 0) {
    sqlite3_exec(database_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

void Transaction::commit() {
  database_.exec("COMMIT");
  finished_ = true;
}

}  // namespace lowbit::cache
