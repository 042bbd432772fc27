/* Bad arguments to every C API entry point: each returns its specific status with an
 * lb_last_error() that names what is wrong; nothing crashes. argv[1]: a package with one f32
 * input "x" [1, 2, 5, 5] and one output "y"; argv[2]: a directory. Prints "BAD ARGS OK". */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lowbit/lowbit.h"

static int failures = 0;

static void expect(lb_status got, lb_status want, const char* word, const char* what) {
  const char* msg = lb_last_error();
  if (got != want || (word && (!msg || !strstr(msg, word)))) {
    printf("FAIL %s: got %s (%s), want %s with '%s'\n", what, lb_status_name(got), msg ? msg : "", lb_status_name(want),
           word ? word : "");
    ++failures;
  }
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  lb_model* m = NULL;
  expect(lb_model_load(NULL, 0, &m), LB_ERR_INVALID_ARG, "NULL", "load NULL path");
  expect(lb_model_load(argv[1], 0, NULL), LB_ERR_INVALID_ARG, "NULL", "load NULL out");
  expect(lb_model_load(argv[1], 0x8, &m), LB_ERR_INVALID_ARG, "0x8", "load unknown flag");
  expect(lb_model_load("/no/such/file.lbpk", 0, &m), LB_ERR_IO, "/no/such/file.lbpk", "load missing file");
  expect(lb_model_load(argv[2], 0, &m), LB_ERR_IO, "not a regular file", "load a directory");
  expect(lb_model_load_buffer(NULL, 10, 0, &m), LB_ERR_INVALID_ARG, "NULL", "buffer NULL");
  expect(lb_model_load_buffer("LBPK", 4, 0, &m), LB_ERR_FORMAT, "too short", "buffer 4 bytes");
  expect(lb_model_load_buffer("LBPK", 4, 0x10, &m), LB_ERR_INVALID_ARG, "0x10", "buffer unknown flag");
  if (m != NULL) {
    printf("FAIL: a failed load left a model\n");
    return 1;
  }
  expect(lb_model_verify(NULL), LB_ERR_INVALID_ARG, "NULL", "verify NULL");
  if (lb_model_num_inputs(NULL) != 0 || strcmp(lb_model_manifest(NULL), "") != 0) ++failures;

  expect(lb_model_load(argv[1], LB_LOAD_LAZY, &m), LB_OK, NULL, "load");
  lb_tensor_info info;
  const void* data = NULL;
  expect(lb_model_tensor(m, "no_such_tensor", &info, &data), LB_ERR_NOT_FOUND, "no_such_tensor", "tensor unknown");
  expect(lb_model_tensor(m, NULL, &info, &data), LB_ERR_INVALID_ARG, "NULL", "tensor NULL name");
  expect(lb_model_input(m, 1, &info), LB_ERR_NOT_FOUND, "index 1", "input index 1");
  expect(lb_model_input(m, -1, &info), LB_ERR_NOT_FOUND, "index -1", "input index -1");
  expect(lb_model_output(m, 7, &info), LB_ERR_NOT_FOUND, "index 7", "output index 7");
  expect(lb_model_input(m, 0, NULL), LB_ERR_INVALID_ARG, "NULL", "input NULL info");

  lb_session* s = NULL;
  lb_session_options opt = {-2};
  expect(lb_session_create(NULL, NULL, &s), LB_ERR_INVALID_ARG, "NULL", "session NULL model");
  expect(lb_session_create(m, &opt, &s), LB_ERR_INVALID_ARG, "threads", "session threads -2");
  expect(lb_session_create(m, NULL, NULL), LB_ERR_INVALID_ARG, "NULL", "session NULL out");
  expect(lb_session_create(m, NULL, &s), LB_OK, NULL, "session");

  float x[50] = {0};
  const int64_t good[4] = {1, 2, 5, 5}, wrong[4] = {1, 3, 5, 5}, neg[4] = {1, -2, 5, 5};
  expect(lb_session_run(s), LB_ERR_INVALID_ARG, "'x'", "run without input");
  expect(lb_session_get_output(s, "y", &info, &data), LB_ERR_INVALID_ARG, "not run", "output before run");
  expect(lb_session_set_input(s, "nope", LB_DTYPE_F32, good, 4, x, sizeof x), LB_ERR_NOT_FOUND, "'x'", "input name");
  expect(lb_session_set_input(s, "x", LB_DTYPE_I32, good, 4, x, sizeof x), LB_ERR_DTYPE, "f32", "input dtype");
  expect(lb_session_set_input(s, "x", (lb_dtype)99, good, 4, x, sizeof x), LB_ERR_DTYPE, "99", "input dtype code");
  expect(lb_session_set_input(s, "x", LB_DTYPE_F32, wrong, 4, x, sizeof x), LB_ERR_SHAPE, "[1, 2, 5, 5]", "input shape");
  expect(lb_session_set_input(s, "x", LB_DTYPE_F32, neg, 4, x, sizeof x), LB_ERR_SHAPE, "[1, 2, 5, 5]", "negative dim");
  expect(lb_session_set_input(s, "x", LB_DTYPE_F32, good, 3, x, sizeof x), LB_ERR_SHAPE, "[1, 2, 5, 5]", "input rank");
  expect(lb_session_set_input(s, "x", LB_DTYPE_F32, good, 99, x, sizeof x), LB_ERR_SHAPE, "ndim 99", "ndim 99");
  expect(lb_session_set_input(s, "x", LB_DTYPE_F32, NULL, 4, x, sizeof x), LB_ERR_INVALID_ARG, "NULL", "NULL shape");
  expect(lb_session_set_input(s, "x", LB_DTYPE_F32, good, 4, x, 12), LB_ERR_INVALID_ARG, "needs 200", "byte count");
  expect(lb_session_set_input(s, "x", LB_DTYPE_F32, good, 4, NULL, sizeof x), LB_ERR_INVALID_ARG, "NULL data", "NULL data");
  expect(lb_session_set_input(s, "x", LB_DTYPE_F32, good, 4, x, sizeof x), LB_OK, NULL, "set input");
  expect(lb_session_run(s), LB_OK, NULL, "run");
  expect(lb_session_get_output(s, "nope", &info, &data), LB_ERR_NOT_FOUND, "'nope'", "output name");
  expect(lb_session_get_output(s, "y", NULL, &data), LB_ERR_INVALID_ARG, "NULL", "output NULL info");
  expect(lb_session_get_output(s, "y", &info, &data), LB_OK, NULL, "output");
  size_t arena = 0;
  expect(lb_session_arena_bytes(NULL, &arena), LB_ERR_INVALID_ARG, "NULL", "arena NULL");
  expect(lb_session_profile_events(s, NULL, NULL), LB_ERR_INVALID_ARG, "NULL", "events NULL");
  expect(lb_session_run(NULL), LB_ERR_INVALID_ARG, "NULL", "run NULL");
  expect(lb_session_set_input(NULL, "x", LB_DTYPE_F32, good, 4, x, sizeof x), LB_ERR_INVALID_ARG, "NULL", "set NULL");
  lb_session_free(s);
  lb_session_free(NULL);
  lb_model_free(m);
  lb_model_free(NULL);
  if (failures) return 1;
  printf("BAD ARGS OK\n");
  return 0;
}
