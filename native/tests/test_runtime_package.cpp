// Tests of the container layer below the C API: SHA-256 vectors, JSON parsing, header checks.
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
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

// NIST FIPS 180-4 example vectors through every implementation: the portable reference, the one
// in use (SHA-NI where the CPU has it, unless LOWBIT_ISA=scalar) and the multi-buffer sha256_many.
LB_TEST(runtime_sha256_nist_vectors_every_path) {
  std::vector<char> million(1000000, 'a');
  const std::string m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  const std::string m896 =
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
  struct V {
    const void* p;
    size_t n;
    const char* hex;
  } v[] = {{"", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
           {"abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
           {m448.data(), m448.size(), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
           {m896.data(), m896.size(), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
           {million.data(), million.size(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"}};
  std::vector<lb::Sha256Job> jobs;
  for (const V& x : v) {
    uint8_t d[32];
    lb::sha256_reference(x.p, x.n, d);
    LB_EXPECT_MSG(hex(d) == x.hex, "portable, " + std::to_string(x.n) + " bytes");
    lb::sha256(x.p, x.n, d);
    LB_EXPECT_MSG(hex(d) == x.hex, std::string(lb::sha256_impl()) + ", " + std::to_string(x.n) + " bytes");
    lb::Sha256Job j;
    j.data = x.p;
    j.size = x.n;
    jobs.push_back(j);
  }
  lb::sha256_many(jobs.data(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i)
    LB_EXPECT_MSG(hex(jobs[i].digest) == v[i].hex, std::string("sha256_many ") + lb::sha256_impl() + ", " + std::to_string(v[i].n) + " bytes");
}

// Every length 0..1000 (each tail length mod 64 many times, the one- and two-block paddings),
// unaligned starts, and streams of very different lengths hashed two at a time: a lane that
// ends takes the next message while the other is mid-stream; several threads share one list.
LB_TEST(runtime_sha256_many_lengths_and_interleaving) {
  std::vector<uint8_t> buf(3u << 20);
  uint32_t x = 12345;
  for (auto& b : buf) {
    x = x * 1664525u + 1013904223u;
    b = uint8_t(x >> 24);
  }
  std::vector<lb::Sha256Job> jobs;
  auto add = [&](size_t off, size_t n) {
    lb::Sha256Job j;
    j.data = buf.data() + off;
    j.size = n;
    jobs.push_back(j);
  };
  add(3, (3u << 20) - 3);  // one long stream first, paired with many short ones
  for (size_t n = 0; n <= 1000; ++n) add(n % 61, n);
  add(1, 1000003);
  add(0, 65536 + 63);
  add(7, 64);
  for (int threads : {1, 3}) {
    for (auto& j : jobs) std::memset(j.digest, 0, 32);
    std::atomic<size_t> next{0};
    std::vector<std::thread> th;
    for (int t = 1; t < threads; ++t) th.emplace_back([&] { lb::sha256_many(jobs.data(), jobs.size(), &next); });
    lb::sha256_many(jobs.data(), jobs.size(), &next);
    for (auto& t : th) t.join();
    int bad = 0;
    for (const auto& j : jobs) {
      uint8_t ref[32], one[32];
      lb::sha256_reference(j.data, j.size, ref);
      lb::sha256(j.data, j.size, one);
      if (std::memcmp(ref, j.digest, 32) != 0 || std::memcmp(ref, one, 32) != 0) {
        if (++bad <= 3) LB_EXPECT_MSG(false, std::string(lb::sha256_impl()) + " differs at " + std::to_string(j.size) + " bytes");
      }
    }
    LB_EXPECT_MSG(bad == 0, std::to_string(bad) + " messages differ, threads " + std::to_string(threads));
  }
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
