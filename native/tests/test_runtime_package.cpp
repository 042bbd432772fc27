// Tests of the container layer below the C API: SHA-256 vectors, JSON parsing, header checks.
#include <cstring>
#include <string>
#include <vector>

#include "package.h"
#include "package_json.h"
#include "package_sha256.h"
#include "test.h"

namespace {
std::string hex(const uint8_t* d) {
  static const char* x = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 32; ++i) {
    s.push_back(x[d[i] >> 4]);
    s.push_back(x[d[i] & 15]);
  }
  return s;
}
}  // namespace

LB_TEST(runtime_sha256_known_vectors) {
  uint8_t d[32];
  lb::sha256("", 0, d);
  LB_EXPECT(hex(d) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  lb::sha256("abc", 3, d);
  LB_EXPECT(hex(d) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char* m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  lb::sha256(m, std::strlen(m), d);
  LB_EXPECT(hex(d) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::vector<char> big(1000000, 'a');
  lb::sha256(big.data(), big.size(), d);
  LB_EXPECT_MSG(hex(d) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", lb::sha256_impl());
}

LB_TEST(runtime_json_parse) {
  lb::Json j;
  std::string err;
  const char* t = R"({"a": [1, -2.5e1, "x\u00e9\n"], "b": {"c": true, "d": null}, "n": 12345678901234})";
  LB_EXPECT_MSG(lb::Json::parse(t, std::strlen(t), &j, &err), err);
  LB_EXPECT(j["a"].size() == 3 && j["a"].at(0).i64() == 1 && j["a"].at(1).num() == -25.0);
  LB_EXPECT(j["a"].at(2).str() == "x\xc3\xa9\n");
  LB_EXPECT(j["b"]["c"].boolean() && j["b"]["d"].is_null() && j["missing"].is_null());
  LB_EXPECT(j["n"].i64() == 12345678901234LL);
  for (const char* bad : {"{", "[1,]", "{\"a\" 1}", "\"abc", "01x", "[1] 2", "{\"a\":tru}", ""}) {
    LB_EXPECT_MSG(!lb::Json::parse(bad, std::strlen(bad), &j, &err), bad);
  }
  std::string deep(200, '[');
  LB_EXPECT(!lb::Json::parse(deep.data(), deep.size(), &j, &err));
}

LB_TEST(runtime_package_rejects_garbage_buffers) {
  std::unique_ptr<lb::Package> p;
  std::vector<uint8_t> buf(256, 0);
  LB_EXPECT(lb::Package::open_buffer(buf.data(), 10, lb::Verify::Full, &p) == LB_ERR_FORMAT);
  LB_EXPECT(lb::Package::open_buffer(buf.data(), buf.size(), lb::Verify::Full, &p) == LB_ERR_FORMAT);
  const uint8_t magic[8] = {'L', 'B', 'P', 'K', 0, '\r', '\n', 0x1a};
  std::memcpy(buf.data(), magic, 8);
  buf[8] = 9;  // major version 9
  LB_EXPECT(lb::Package::open_buffer(buf.data(), buf.size(), lb::Verify::Full, &p) == LB_ERR_VERSION);
  buf[8] = 1;
  LB_EXPECT(lb::Package::open_buffer(buf.data(), buf.size(), lb::Verify::Full, &p) == LB_ERR_FORMAT);
  LB_EXPECT(lb::Package::open_file("/nonexistent/x.lbpk", lb::Verify::Full, &p) == LB_ERR_IO);
}
