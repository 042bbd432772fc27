// Recursive-descent JSON parser for manifests (RFC 8259 subset: no duplicate-key check).
#include "package_json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lb {

const Json& Json::null_value() {
  static const Json n;
  return n;
}

const Json& Json::operator[](const char* key) const {
  if (type_ == Object)
    for (const auto& kv : obj_)
      if (kv.first == key) return kv.second;
  return null_value();
}

bool Json::has(const char* key) const {
  if (type_ == Object)
    for (const auto& kv : obj_)
      if (kv.first == key) return true;
  return false;
}

class JsonParser {
 public:
  JsonParser(const char* p, size_t n) : s_(p), n_(n) {}

  bool parse(Json* out, std::string* err) {
    skip();
    if (!value(out, 0)) {
      *err = msg_;
      return false;
    }
    skip();
    if (i_ != n_) {
      fail("trailing characters");
      *err = msg_;
      return false;
    }
    return true;
  }

 private:
  const char* s_;
  size_t n_;
  size_t i_ = 0;
  std::string msg_;

  bool fail(const char* what) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "JSON error at byte %zu: %s", i_, what);
    msg_ = buf;
    return false;
  }
  void skip() {
    while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool lit(const char* w) {
    const size_t l = std::strlen(w);
    if (n_ - i_ < l || std::memcmp(s_ + i_, w, l) != 0) return fail("invalid literal");
    i_ += l;
    return true;
  }
  static void put_utf8(uint32_t cp, std::string* o) {
    if (cp < 0x80) {
      o->push_back(char(cp));
    } else if (cp < 0x800) {
      o->push_back(char(0xC0 | (cp >> 6)));
      o->push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      o->push_back(char(0xE0 | (cp >> 12)));
      o->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      o->push_back(char(0x80 | (cp & 0x3F)));
    } else {
      o->push_back(char(0xF0 | (cp >> 18)));
      o->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      o->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      o->push_back(char(0x80 | (cp & 0x3F)));
    }
  }
  bool hex4(uint32_t* v) {
    if (n_ - i_ < 4) return fail("short \\u escape");
    *v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      *v <<= 4;
      if (c >= '0' && c <= '9') *v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') *v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') *v |= uint32_t(c - 'A' + 10);
      else return fail("bad \\u escape");
    }
    return true;
  }
  bool string(std::string* o) {
    ++i_;  // opening quote
    while (true) {
      if (i_ >= n_) return fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return fail("control character in string");
      if (c != '\\') {
        o->push_back(char(c));
        continue;
      }
      if (i_ >= n_) return fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': o->push_back('"'); break;
        case '\\': o->push_back('\\'); break;
        case '/': o->push_back('/'); break;
        case 'b': o->push_back('\b'); break;
        case 'f': o->push_back('\f'); break;
        case 'n': o->push_back('\n'); break;
        case 'r': o->push_back('\r'); break;
        case 't': o->push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && n_ - i_ >= 6 && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
            i_ += 2;
            uint32_t lo;
            if (!hex4(&lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(cp, o);
          break;
        }
        default: return fail("bad escape");
      }
    }
  }
  bool number(Json* out) {
    const size_t start = i_;
    bool is_int = true;
    if (i_ < n_ && s_[i_] == '-') ++i_;
    if (i_ >= n_ || !(s_[i_] >= '0' && s_[i_] <= '9')) return fail("bad number");
    while (i_ < n_ && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E' ||
                       s_[i_] == '+' || s_[i_] == '-')) {
      if (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E') is_int = false;
      ++i_;
    }
    const size_t len = i_ - start;
    if (len > 63) return fail("number too long");
    char buf[64];
    std::memcpy(buf, s_ + start, len);
    buf[len] = '\0';
    char* end = nullptr;
    out->type_ = Json::Number;
    out->num_ = std::strtod(buf, &end);
    if (end != buf + len || !std::isfinite(out->num_)) return fail("bad number");
    if (is_int) {
      out->int_ = std::strtoll(buf, &end, 10);
    } else {
      out->int_ = (out->num_ >= -9.2e18 && out->num_ <= 9.2e18) ? int64_t(out->num_) : 0;
    }
    return true;
  }
  bool value(Json* out, int depth) {
    if (depth > 64) return fail("nesting too deep");
    if (i_ >= n_) return fail("unexpected end");
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      out->type_ = Json::Object;
      skip();
      if (i_ < n_ && s_[i_] == '}') {
        ++i_;
        return true;
      }
      while (true) {
        skip();
        if (i_ >= n_ || s_[i_] != '"') return fail("expected a key");
        std::string key;
        if (!string(&key)) return false;
        skip();
        if (i_ >= n_ || s_[i_] != ':') return fail("expected ':'");
        ++i_;
        skip();
        out->obj_.emplace_back(std::move(key), Json());
        if (!value(&out->obj_.back().second, depth + 1)) return false;
        skip();
        if (i_ < n_ && s_[i_] == ',') { ++i_; continue; }
        if (i_ < n_ && s_[i_] == '}') { ++i_; return true; }
        return fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++i_;
      out->type_ = Json::Array;
      skip();
      if (i_ < n_ && s_[i_] == ']') {
        ++i_;
        return true;
      }
      while (true) {
        skip();
        out->arr_.emplace_back();
        if (!value(&out->arr_.back(), depth + 1)) return false;
        skip();
        if (i_ < n_ && s_[i_] == ',') { ++i_; continue; }
        if (i_ < n_ && s_[i_] == ']') { ++i_; return true; }
        return fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      out->type_ = Json::String;
      return string(&out->str_);
    }
    if (c == 't') { out->type_ = Json::Bool; out->b_ = true; return lit("true"); }
    if (c == 'f') { out->type_ = Json::Bool; out->b_ = false; return lit("false"); }
    if (c == 'n') { out->type_ = Json::Null; return lit("null"); }
    return number(out);
  }
};

bool Json::parse(const char* text, size_t n, Json* out, std::string* err) {
  *out = Json();
  JsonParser p(text, n);
  return p.parse(out, err);
}

void json_escape(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(char(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      *out += buf;
    } else {
      out->push_back(char(c));
    }
  }
  out->push_back('"');
}

}  // namespace lb
