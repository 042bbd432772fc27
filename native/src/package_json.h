// A small JSON reader for package manifests: no exceptions, depth-limited, error with offset.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lb {

/// A parsed JSON value. Objects keep their key order; lookups are linear (manifests are small
/// per object, and lookups happen at load, never during inference).
class Json {
 public:
  enum Type { Null, Bool, Number, String, Array, Object };

  Type type() const { return type_; }
  bool is_null() const { return type_ == Null; }
  bool is_number() const { return type_ == Number; }
  bool is_string() const { return type_ == String; }
  bool is_array() const { return type_ == Array; }
  bool is_object() const { return type_ == Object; }

  double num(double def = 0) const { return type_ == Number ? num_ : def; }
  int64_t i64(int64_t def = 0) const { return type_ == Number ? int_ : def; }
  bool boolean(bool def = false) const { return type_ == Bool ? b_ : def; }
  const std::string& str() const { return str_; }  ///< "" unless a string
  size_t size() const { return type_ == Array ? arr_.size() : type_ == Object ? obj_.size() : 0; }
  const Json& at(size_t i) const { return i < arr_.size() ? arr_[i] : null_value(); }
  /// Member `key`, or a null value when absent (or not an object).
  const Json& operator[](const char* key) const;
  const Json& operator[](const std::string& key) const { return (*this)[key.c_str()]; }
  bool has(const char* key) const;
  const std::vector<std::pair<std::string, Json>>& items() const { return obj_; }
  const std::vector<Json>& elems() const { return arr_; }

  /// Parses `n` bytes; on failure returns false with `err` naming the byte offset.
  static bool parse(const char* text, size_t n, Json* out, std::string* err);
  static const Json& null_value();

 private:
  friend class JsonParser;
  Type type_ = Null;
  bool b_ = false;
  double num_ = 0;
  int64_t int_ = 0;
  std::string str_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
};

/// Writes `s` as a JSON string literal (with quotes) to `out`.
void json_escape(const std::string& s, std::string* out);

}  // namespace lb
