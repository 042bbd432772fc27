/* A plain C program using only lowbit_llm.h: open an LLM package, generate greedily with a
   streaming callback (profiled per op), and check that a prompt past the context is refused.
   Prints the tokens, then the context error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  if (lb_llm_profile_enable(llm, 1) != LB_OK) return 1;
  if (lb_llm_generate(llm, prompt, 3, 10, &s, NULL, 0, on_token, &count, out, &n) != LB_OK || n != 10) {
    fprintf(stderr, "generate: %s\n", lb_last_error());
    return 1;
  }
  /* per-op profile: the decode steps' lm_head ran 9 times (the last token is not fed back), and
     sampling 10 times */
  int32_t ne = 0;
  if (lb_llm_profile_get(llm, NULL, 0, &ne) != LB_OK || ne <= 0) return 1;
  lb_llm_prof_entry* ev = (lb_llm_prof_entry*)calloc((size_t)ne, sizeof(lb_llm_prof_entry));
  if (lb_llm_profile_get(llm, ev, ne, &ne) != LB_OK) return 1;
  int64_t head_calls = -1, samples = -1;
  for (int i = 0; i < ne; ++i) {
    if (ev[i].phase == 1 && strcmp(ev[i].op, "lm_head") == 0) head_calls = ev[i].calls;
    if (ev[i].phase == 1 && strcmp(ev[i].op, "sampling") == 0) samples = ev[i].calls;
  }
  free(ev);
  if (head_calls != 9 || samples != 10) {
    fprintf(stderr, "profile: lm_head %lld decode calls, sampling %lld\n", (long long)head_calls, (long long)samples);
    return 1;
  }
  if (lb_llm_profile_get(llm, NULL, 1, &ne) != LB_ERR_INVALID_ARG) return 1;
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
