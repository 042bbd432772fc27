/* classify: EfficientNet-Lite0 image classifier in plain C on the lowbit C API.
 *   classify MODEL.lbpk IMAGE.ppm [LABELS.txt] [--threads N]
 * Reads a binary PPM (P6) image, resizes it to the model's input size (bilinear), normalises it
 * as EfficientNet-Lite expects ((v - 127) / 128), runs the model and prints the top-5 classes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit/lowbit.h"

static unsigned char* read_ppm(const char* path, int* w, int* h) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  int maxv = 0;
  unsigned char* px = NULL;
  if (fscanf(f, "P6 %d %d %d", w, h, &maxv) == 3 && maxv == 255 && *w > 0 && *h > 0 && *w < 100000 && *h < 100000) {
    fgetc(f); /* the single whitespace after the header */
    px = malloc((size_t)*w * (size_t)*h * 3);
    if (px && fread(px, 3, (size_t)*w * (size_t)*h, f) != (size_t)*w * (size_t)*h) {
      free(px);
      px = NULL;
    }
  }
  fclose(f);
  return px;
}

static int die(const char* what, lb_status st) {
  fprintf(stderr, "classify: %s: %s: %s\n", what, lb_status_name(st), lb_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: classify MODEL.lbpk IMAGE.ppm [LABELS.txt] [--threads N]\n");
    return 2;
  }
  const char* labels_path = NULL;
  int threads = 0;
  for (int i = 3; i < argc; ++i) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else labels_path = argv[i];
  }
  lb_model* model = NULL;
  lb_status st = lb_model_load(argv[1], 0, &model);
  if (st != LB_OK) return die("load", st);
  lb_tensor_info in, out;
  if ((st = lb_model_input(model, 0, &in)) != LB_OK || (st = lb_model_output(model, 0, &out)) != LB_OK) return die("query", st);
  if (in.ndim != 4 || in.dtype != LB_DTYPE_F32 || in.shape[1] != 3) {
    fprintf(stderr, "classify: expected an NCHW float image input, got %d dims\n", in.ndim);
    return 1;
  }
  const int H = (int)in.shape[2], W = (int)in.shape[3];
  int iw, ih;
  unsigned char* px = read_ppm(argv[2], &iw, &ih);
  if (!px) {
    fprintf(stderr, "classify: cannot read %s as a binary PPM (P6, 8-bit)\n", argv[2]);
    return 1;
  }
  float* x = malloc(sizeof(float) * 3 * (size_t)H * (size_t)W);
  for (int y = 0; y < H; ++y)
    for (int xo = 0; xo < W; ++xo) {
      const float fy = fmaxf(0.f, (y + 0.5f) * ih / H - 0.5f), fx = fmaxf(0.f, (xo + 0.5f) * iw / W - 0.5f);
      const int y0 = (int)fy, x0 = (int)fx;
      const int y1 = y0 + 1 < ih ? y0 + 1 : ih - 1, x1 = x0 + 1 < iw ? x0 + 1 : iw - 1;
      const float dy = fy - y0, dx = fx - x0;
      for (int c = 0; c < 3; ++c) {
        const float v = (px[(y0 * iw + x0) * 3 + c] * (1 - dx) + px[(y0 * iw + x1) * 3 + c] * dx) * (1 - dy) +
                        (px[(y1 * iw + x0) * 3 + c] * (1 - dx) + px[(y1 * iw + x1) * 3 + c] * dx) * dy;
        x[((size_t)c * H + y) * W + xo] = (v - 127.f) / 128.f;
      }
    }
  free(px);
  lb_session_options opts = {threads};
  lb_session* sess = NULL;
  if ((st = lb_session_create(model, &opts, &sess)) != LB_OK) return die("session", st);
  int64_t shape[4] = {1, 3, H, W};
  if ((st = lb_session_set_input(sess, in.name, LB_DTYPE_F32, shape, 4, x, sizeof(float) * 3 * (size_t)H * W)) != LB_OK)
    return die("input", st);
  if ((st = lb_session_run(sess)) != LB_OK) return die("run", st);
  lb_tensor_info res;
  const void* data = NULL;
  if ((st = lb_session_get_output(sess, out.name, &res, &data)) != LB_OK) return die("output", st);
  const float* logits = data;
  const int n = (int)res.shape[res.ndim - 1];
  /* softmax for probabilities, then the 5 largest */
  double mx = logits[0], sum = 0;
  for (int i = 1; i < n; ++i) mx = logits[i] > mx ? logits[i] : mx;
  for (int i = 0; i < n; ++i) sum += exp(logits[i] - mx);
  char** labels = NULL;
  if (labels_path) {
    FILE* lf = fopen(labels_path, "r");
    if (lf) {
      labels = calloc((size_t)n, sizeof(char*));
      char line[256];
      for (int i = 0; i < n && fgets(line, sizeof line, lf); ++i) {
        line[strcspn(line, "\r\n")] = 0;
        labels[i] = strdup(line);
      }
      fclose(lf);
    }
  }
  int used[5] = {-1, -1, -1, -1, -1};
  for (int k = 0; k < 5 && k < n; ++k) {
    int best = -1;
    for (int i = 0; i < n; ++i) {
      int taken = 0;
      for (int j = 0; j < k; ++j) taken |= used[j] == i;
      if (!taken && (best < 0 || logits[i] > logits[best])) best = i;
    }
    used[k] = best;
    printf("%d %d %.4f %s\n", k + 1, best, exp(logits[best] - mx) / sum, labels && labels[best] ? labels[best] : "");
  }
  if (labels) {
    for (int i = 0; i < n; ++i) free(labels[i]);
    free(labels);
  }
  free(x);
  lb_session_free(sess);
  lb_model_free(model);
  return 0;
}
