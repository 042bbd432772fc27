/* A plain C program using only lowbit_llm.h: open an LLM package, generate greedily with a
   streaming callback, and check that a prompt past the context is refused. Prints the tokens. */
#include <stdio.h>
#include <stdlib.h>

#include "lowbit/lowbit_llm.h"

static int on_token(int32_t token, void* user) {
  int* count = (int*)user;
  printf("%d%s", token, ++*count < 10 ? "," : "\n");
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  lb_llm_options opt;
  lb_llm_options_default(&opt);
  opt.threads = 2;
  lb_llm_t llm = NULL;
  if (lb_llm_open(argv[1], &opt, &llm) != LB_OK) {
    fprintf(stderr, "open: %s\n", lb_last_error());
    return 1;
  }
  lb_llm_info info;
  if (lb_llm_get_info(llm, &info) != LB_OK) return 1;
  lb_llm_sampling s;
  lb_llm_sampling_default(&s);
  const int32_t prompt[] = {5, 6, 7};
  int32_t out[10];
  int32_t n = 0;
  int count = 0;
  if (lb_llm_generate(llm, prompt, 3, 10, &s, NULL, 0, on_token, &count, out, &n) != LB_OK || n != 10) {
    fprintf(stderr, "generate: %s\n", lb_last_error());
    return 1;
  }
  int32_t* big = (int32_t*)calloc((size_t)info.context_length + 1, sizeof(int32_t));
  lb_status st = lb_llm_prefill(llm, big, info.context_length + 1, NULL);
  free(big);
  if (st != LB_ERR_CONTEXT) {
    fprintf(stderr, "expected LB_ERR_CONTEXT, got %s\n", lb_status_name(st));
    return 1;
  }
  printf("context error: %s\n", lb_last_error());
  lb_llm_free(llm);
  return 0;
}
