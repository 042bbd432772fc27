/* A C program that uses only lowbit.h: version, CPU features, ISA selection and errors. */
#include <stdio.h>
#include <string.h>

#include "lowbit/lowbit.h"

int main(void) {
  int failures = -1;
  char report[4096];
  printf("version %s\n", lb_version());
  printf("best %s active %s threads %d\n", lb_isa_name(lb_isa_best()), lb_isa_name(lb_isa_active()),
         lb_default_threads());
  if (lb_isa_select("no-such-isa") != LB_ERR_ISA || strstr(lb_last_error(), "unknown ISA") == NULL) {
    printf("FAIL: bad ISA name not refused\n");
    return 1;
  }
  if (lb_isa_select("scalar") != LB_OK || lb_isa_active() != LB_ISA_SCALAR) {
    printf("FAIL: scalar not selectable\n");
    return 1;
  }
  if (lb_isa_select("auto") != LB_OK) return 1;
  if (lb_selfcheck(report, sizeof report, &failures) != LB_OK || failures != 0) {
    printf("FAIL: selfcheck\n%s", report);
    return 1;
  }
  if (strcmp(lb_status_name(LB_ERR_CHECKSUM), "LB_ERR_CHECKSUM") != 0) return 1;
  printf("C API OK\n");
  return 0;
}
