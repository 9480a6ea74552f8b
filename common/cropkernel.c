/* Many crops in one call, the cascade's and the training data's: for each box, the same bytes
 * as common.box.Box.crop makes with OpenCV 4 (cv2.warpAffine, INTER_LINEAR, BORDER_REPLICATE,
 * of the box at about its own resolution, turned or not; then cv2.resize, INTER_AREA, to the
 * net's input size).
 *
 * Why: from Python each crop is two OpenCV calls and some arithmetic around them, most of the
 * time of a 15x15 patch; a cascade batch of 256 faces is 5,888 crops, a face's training data
 * 60-200. Here the loop over crops is in C, with the arithmetic of OpenCV's imgwarp.cpp and
 * resize.cpp (fixed-point bilinear taps at 1/32-pixel positions; area cells with float weights
 * added in the same order), so the bytes are the same: tests/test_cropkernel.py compares them
 * with OpenCV's on many boxes.
 * Compiled by scripts/setup.sh with -ffp-contract=off (no fused multiply-add: OpenCV's own
 * loops round each product). Loaded through ctypes (common/cropkernel.py), which lets go of
 * Python's lock during the call, so threads can share a batch.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

enum { AB_BITS = 10, INTER_BITS = 5, COEF_BITS = 15 };

typedef struct { int di, si; float alpha; } Cell;  /* output index, input index, weight */

/* resize.cpp computeResizeAreaTab: the input cells each output pixel averages. */
static int area_cells(int ssize, int dsize, double scale, Cell *tab)
{
    int k = 0;
    for (int dx = 0; dx < dsize; dx++) {
        double fsx1 = dx * scale, fsx2 = fsx1 + scale;
        double width = scale < ssize - fsx1 ? scale : ssize - fsx1;
        int sx1 = (int)ceil(fsx1), sx2 = (int)floor(fsx2);
        if (sx2 > ssize - 1) sx2 = ssize - 1;
        if (sx1 > sx2) sx1 = sx2;
        if (sx1 - fsx1 > 1e-3) {
            tab[k].di = dx; tab[k].si = sx1 - 1; tab[k++].alpha = (float)((sx1 - fsx1) / width);
        }
        for (int sx = sx1; sx < sx2; sx++) {
            tab[k].di = dx; tab[k].si = sx; tab[k++].alpha = (float)(1.0 / width);
        }
        if (fsx2 - sx2 > 1e-3) {
            double part = fsx2 - sx2 < 1.0 ? fsx2 - sx2 : 1.0;
            if (part > width) part = width;
            tab[k].di = dx; tab[k].si = sx2; tab[k++].alpha = (float)(part / width);
        }
    }
    return k;
}

static uint8_t to_u8(float v)  /* saturate_cast<uchar>(float): round half to even, clamp */
{
    long r = lrintf(v);
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

/* cv2.resize(cut, (dw, dh), interpolation=INTER_AREA) for cuts of sw x sh, dw <= sw, dh <= sh
 * (not both equal). Its tables depend on the sizes only: made for one size, used for every cut
 * of that size (dl_crops takes the cuts in order of size). */
typedef struct {
    int sw, sh, dw, dh, fast, ix, iy, slots, ny;
    Cell *xt, *yt;     /* OpenCV's cells along x and down */
    int *slot_src;     /* the cells of output column dx: slot t of dx (weight 0 where fewer) */
    float *slot_alpha;
    float *buf, *sum;  /* one source row weighed along x; the output row being summed */
} Shrink;

static void shrink_size(Shrink *z, int sw, int sh)
{
    if (z->sw == sw && z->sh == sh) return;
    double scale_x = 1. / ((double)z->dw / sw), scale_y = 1. / ((double)z->dh / sh);
    z->ix = (int)lrint(scale_x);
    z->iy = (int)lrint(scale_y);
    z->fast = fabs(scale_x - z->ix) < 2.220446049250313e-16 && fabs(scale_y - z->iy) < 2.220446049250313e-16;
    if (!z->fast && z->sw != sw) {
        int nx = area_cells(sw, z->dw, scale_x, z->xt), slots = 0, dw = z->dw;
        for (int k = 0, run = 0; k < nx; k++) {
            run = k && z->xt[k].di == z->xt[k - 1].di ? run + 1 : 1;
            if (run > slots) slots = run;
        }
        for (int i = 0; i < slots * dw; i++) { z->slot_src[i] = 0; z->slot_alpha[i] = 0.f; }
        for (int k = 0, run = 0; k < nx; k++) {
            run = k && z->xt[k].di == z->xt[k - 1].di ? run + 1 : 0;
            z->slot_src[z->xt[k].di * slots + run] = z->xt[k].si;
            z->slot_alpha[z->xt[k].di * slots + run] = z->xt[k].alpha;
        }
        z->slots = slots;
    }
    if (!z->fast && z->sh != sh)
        z->ny = area_cells(sh, z->dh, scale_y, z->yt);
    /* the x cells were made for sw only if not fast; forget them otherwise */
    z->sw = z->fast ? -1 : sw;
    z->sh = z->fast ? -1 : sh;
}

static void shrink(Shrink *z, const uint8_t *src, int sw, int sh, uint8_t *dst)
{
    shrink_size(z, sw, sh);
    int dw = z->dw, dh = z->dh;
    if (z->fast) {  /* whole multiples: resizeAreaFast (2x2 rounds half up in integers, else a float scale) */
        int ix = z->ix, iy = z->iy;
        float scale = 1.f / (ix * iy);
        for (int dy = 0; dy < dh; dy++)
            for (int dx = 0; dx < dw; dx++) {
                int s = 0;
                for (int y = 0; y < iy; y++)
                    for (int x = 0; x < ix; x++)
                        s += src[(size_t)(dy * iy + y) * sw + dx * ix + x];
                dst[(size_t)dy * dw + dx] = ix == 2 && iy == 2 ? (uint8_t)((s + 2) >> 2) : to_u8(s * scale);
            }
        return;
    }
    /* ResizeArea_Invoker: each source row weighed along x (each column adding its cells in
     * OpenCV's order; a row in two y cells is weighed once), then summed down into its output row. */
    const Cell *yt = z->yt;
    float *buf = z->buf, *sum = z->sum;
    int slots = z->slots, prev = yt[0].di, weighed = -1;
    for (int dx = 0; dx < dw; dx++) sum[dx] = 0.f;
    for (int j = 0; j < z->ny; j++) {
        float beta = yt[j].alpha;
        if (yt[j].si != weighed) {
            const uint8_t *row = src + (size_t)yt[j].si * sw;
            for (int dx = 0; dx < dw; dx++) {
                const int *si = z->slot_src + dx * slots;
                const float *al = z->slot_alpha + dx * slots;
                float acc = 0.f;
                for (int t = 0; t < slots; t++) acc += row[si[t]] * al[t];
                buf[dx] = acc;
            }
            weighed = yt[j].si;
        }
        if (yt[j].di != prev) {
            uint8_t *out = dst + (size_t)prev * dw;
            for (int dx = 0; dx < dw; dx++) { out[dx] = to_u8(sum[dx]); sum[dx] = beta * buf[dx]; }
            prev = yt[j].di;
        } else {
            for (int dx = 0; dx < dw; dx++) sum[dx] += beta * buf[dx];
        }
    }
    uint8_t *out = dst + (size_t)prev * dw;
    for (int dx = 0; dx < dw; dx++) out[dx] = to_u8(sum[dx]);
}

static int clampi(int v, int hi) { return v < 0 ? 0 : v > hi ? hi : v; }

/* cv2.warpAffine(img, m, (mw, mh), INTER_LINEAR, BORDER_REPLICATE) for a 2x3 matrix m (row
 * major), as imgwarp.cpp computes it: the inverse as invertAffineTransform, then for output
 * pixel (x, y) the source position in 1/1024 pixel, round(m'01 y + m'02) + round(m'00 x), and
 * down to 1/32. OpenCV weighs the four taps with a table, (1 - fy)(1 - fx) * 2^15 and so on
 * rounded, for fx, fy in 1/32 steps: each entry is exactly 32 * (32 * (1 - fy)) * (32 * fx)
 * (integers, no rounding), so the weighted sum splits into a pass along x and one along y.
 * Without rotation (the cascade's crops) the x taps are the same on every row: each source
 * row is weighed along x once, kept for the next output row, and the output rows mix two. */
static void warp_rotated(const uint8_t *img, int w, int h, int64_t step, const double *inv,
                         int mw, int mh, int *cols, uint8_t *cut);

static void warp_cut(const uint8_t *img, int w, int h, int64_t step, const double *m,
                     int mw, int mh, int *cols, uint8_t *cut)
{
    double d = m[0] * m[4] - m[1] * m[3];
    d = d != 0 ? 1. / d : 0;
    double a00 = m[4] * d, a11 = m[0] * d, a01 = -m[1] * d, a10 = -m[3] * d;
    double b0 = -a00 * m[2] - a01 * m[5], b1 = -a10 * m[2] - a11 * m[5];
    if (a01 != 0 || a10 != 0) {
        double inv[6] = {a00, a01, b0, a10, a11, b1};
        warp_rotated(img, w, h, step, inv, mw, mh, cols, cut);
        return;
    }
    int x_start = (int)lrint(b0 * (1 << AB_BITS)) + (1 << (AB_BITS - INTER_BITS - 1));
    /* per output column: left tap, right tap, their weights (the same for every row) */
    int *left = cols, *right = cols + mw, *w_left = cols + 2 * mw, *w_right = cols + 3 * mw;
    int *rows[2] = {cols + 4 * mw, cols + 5 * mw};  /* two source rows, weighed along x */
    int have[2] = {-1, -1};
    for (int x = 0; x < mw; x++) {
        int fx = (x_start + (int)lrint(a00 * x * (1 << AB_BITS))) >> (AB_BITS - INTER_BITS);
        left[x] = clampi(fx >> INTER_BITS, w - 1);
        right[x] = clampi((fx >> INTER_BITS) + 1, w - 1);
        w_right[x] = fx & 31;
        w_left[x] = 32 - w_right[x];
    }
    for (int y = 0; y < mh; y++) {
        int fy = ((int)lrint((a11 * y + b1) * (1 << AB_BITS)) + (1 << (AB_BITS - INTER_BITS - 1)))
                 >> (AB_BITS - INTER_BITS);
        int want[2] = {clampi(fy >> INTER_BITS, h - 1), clampi((fy >> INTER_BITS) + 1, h - 1)};
        const int *along[2];
        for (int k = 0; k < 2; k++) {
            int slot = have[0] == want[k] ? 0 : have[1] == want[k] ? 1 : -1;
            if (slot < 0) {  /* weigh this source row along x, where the other wanted row is not */
                slot = k == 1 && have[0] == want[0] ? 1 : k == 1 && have[1] == want[0] ? 0 : k;
                const uint8_t *src = img + want[k] * step;
                int *dst = rows[slot];
                for (int x = 0; x < mw; x++) dst[x] = w_left[x] * src[left[x]] + w_right[x] * src[right[x]];
                have[slot] = want[k];
            }
            along[k] = rows[slot];
        }
        int w_down = fy & 31, w_up = 32 - w_down;
        uint8_t *out = cut + (size_t)y * mw;
        for (int x = 0; x < mw; x++)
            out[x] = (uint8_t)((32 * (w_up * along[0][x] + w_down * along[1][x]) + (1 << (COEF_BITS - 1))) >> COEF_BITS);
    }
}

static void warp_rotated(const uint8_t *img, int w, int h, int64_t step, const double *inv,
                         int mw, int mh, int *cols, uint8_t *cut)
{
    int *dx = cols, *dy = cols + mw;  /* round(m'00 x), round(m'10 x) in 1/1024 pixel */
    for (int x = 0; x < mw; x++) {
        dx[x] = (int)lrint(inv[0] * x * (1 << AB_BITS));
        dy[x] = (int)lrint(inv[3] * x * (1 << AB_BITS));
    }
    for (int y = 0; y < mh; y++) {
        int x0 = (int)lrint((inv[1] * y + inv[2]) * (1 << AB_BITS)) + (1 << (AB_BITS - INTER_BITS - 1));
        int y0 = (int)lrint((inv[4] * y + inv[5]) * (1 << AB_BITS)) + (1 << (AB_BITS - INTER_BITS - 1));
        uint8_t *out = cut + (size_t)y * mw;
        for (int x = 0; x < mw; x++) {
            int fx = (x0 + dx[x]) >> (AB_BITS - INTER_BITS), fy = (y0 + dy[x]) >> (AB_BITS - INTER_BITS);
            int sx = fx >> INTER_BITS, sy = fy >> INTER_BITS;
            int xa = clampi(sx, w - 1), xb = clampi(sx + 1, w - 1);
            const uint8_t *r0 = img + clampi(sy, h - 1) * step, *r1 = img + clampi(sy + 1, h - 1) * step;
            int wx = fx & 31, wy = fy & 31;
            int v = 32 * ((32 - wy) * ((32 - wx) * r0[xa] + wx * r0[xb]) + wy * ((32 - wx) * r1[xa] + wx * r1[xb]));
            out[x] = (uint8_t)((v + (1 << (COEF_BITS - 1))) >> COEF_BITS);
        }
    }
}

/* n crops: crop i from image index[i] (pointers, widths, heights, row steps in bytes), cut at
 * mid_w[i] x mid_h[i] by the 2x3 matrix mats[6 i ..] (as warpAffine takes it), shrunk to
 * out_w x out_h into out + i * out_w * out_h.
 * Returns 0, or -1 when memory runs out. */
static int by_size(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int dl_crops(int n, const uint8_t *const *images, const int *widths, const int *heights,
             const int64_t *steps, const int64_t *index, const double *mats, const int *mid_w,
             const int *mid_h, int out_w, int out_h, uint8_t *out)
{
    int max_w = out_w, max_h = out_h;
    for (int i = 0; i < n; i++) {
        if (mid_w[i] > max_w) max_w = mid_w[i];
        if (mid_h[i] > max_h) max_h = mid_h[i];
    }
    int max_slots = max_w / out_w + 2;
    Shrink z = {-1, -1, out_w, out_h, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL};
    uint8_t *cut = malloc((size_t)max_w * max_h);
    int *cols = malloc(sizeof(int) * 6 * (size_t)max_w);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    z.xt = malloc(sizeof(Cell) * (size_t)(2 * max_w + 2));
    z.yt = malloc(sizeof(Cell) * (size_t)(2 * max_h + 2));
    z.slot_src = malloc(sizeof(int) * (size_t)(max_slots * out_w));
    z.slot_alpha = malloc(sizeof(float) * (size_t)(max_slots * out_w + 2 * out_w));
    int ok = cut && cols && order && z.xt && z.yt && z.slot_src && z.slot_alpha;
    if (ok) {
        z.buf = z.slot_alpha + max_slots * out_w;
        z.sum = z.buf + out_w;
        /* in order of cut size, so that the area tables are made once per size */
        for (int i = 0; i < n; i++) order[i] = ((int64_t)mid_w[i] << 42) | ((int64_t)mid_h[i] << 21) | i;
        qsort(order, (size_t)n, sizeof(int64_t), by_size);
    }
    for (int r = 0; ok && r < n; r++) {
        int i = (int)(order[r] & ((1 << 21) - 1));
        int64_t j = index[i];
        uint8_t *dst = out + (size_t)i * out_w * out_h;
        int whole = mid_w[i] == out_w && mid_h[i] == out_h;
        warp_cut(images[j], widths[j], heights[j], steps[j], mats + 6 * i, mid_w[i], mid_h[i], cols,
                 whole ? dst : cut);
        if (!whole)
            shrink(&z, cut, mid_w[i], mid_h[i], dst);
    }
    free(cut); free(cols); free(order); free(z.xt); free(z.yt); free(z.slot_src); free(z.slot_alpha);
    return ok ? 0 : -1;
}
