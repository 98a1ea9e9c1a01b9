/* Console progress for rank 0: live line with ETA on terminals, plain lines in logs/pipes. */
#include "train/progress.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/log.h"
#include "dtrain/text_escape.h"

int dt_progress_verbose(void) {
    const char *v = getenv("DTRAIN_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

void dt_progress_init(dt_progress *p, FILE *out, int under_launcher) {
    memset(p, 0, sizeof *p);
    p->out = out;
    /* DTRAIN_PROGRESS=live|plain overrides the guess. Under mpirun every rank's stdout is a
     * pseudo-terminal even when the job's output goes to a file, so launched ranks default to
     * plain lines (launch/dtrain-run asks for live when its own stdout is a terminal). */
    const char *mode = getenv("DTRAIN_PROGRESS");
    if (mode && strcmp(mode, "live") == 0)
        p->live = 1;
    else if (mode && strcmp(mode, "plain") == 0)
        p->live = 0;
    else
        p->live = isatty(fileno(out)) && !under_launcher;
    const char *term = getenv("TERM");
    p->color = p->live && !getenv("NO_COLOR") && !(term && strcmp(term, "dumb") == 0);
}

static void format_duration(double seconds, char *buf, size_t size) {
    if (seconds < 0 || seconds != seconds) seconds = 0;
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, size, "%lds", s);
}

static void close_live_line(dt_progress *p) {
    if (p->line_open) {
        fputs("\r\033[K", p->out);
        p->line_open = 0;
        dt_log_live_line(NULL); /* warnings need not clear it now */
    }
}

void dt_progress_live(dt_progress *p, const dt_progress_state *s) {
    if (!p->live) return;
    char eta[32];
    format_duration(s->eta_s, eta, sizeof eta);
    fprintf(p->out, "\r\033[Kepoch %d/%d  step %ld/%ld", s->epoch, s->epochs, s->global_step,
            s->total_steps);
    if (s->has_stats)
        fprintf(p->out, "  loss %.4f  acc %.3f  %.1f img/s", s->loss, s->acc, s->img_per_s);
    fprintf(p->out, "  ETA %s", eta);
    fflush(p->out);
    p->line_open = 1;
    dt_log_live_line(p->out); /* a warning or error clears it first */
}

void dt_progress_log(dt_progress *p, const dt_progress_state *s) {
    close_live_line(p);
    char eta[32];
    format_duration(s->eta_s, eta, sizeof eta);
    fprintf(p->out, "epoch %d/%d step %ld/%ld: loss %.4f acc %.4f lr %.6g %.1f img/s ETA %s\n",
            s->epoch, s->epochs, s->global_step, s->total_steps, s->loss, s->acc, s->lr,
            s->img_per_s, eta);
    fflush(p->out);
}

void dt_progress_line(dt_progress *p, const char *highlight, const char *fmt, ...) {
    close_live_line(p);
    if (highlight && p->color) fputs(highlight, p->out);
    char line[2048], shown[4 * sizeof line]; /* names in it are escaped */
    va_list args;
    va_start(args, fmt);
    vsnprintf(line, sizeof line, fmt, args);
    va_end(args);
    fputs(dt_escape_text(line, shown, sizeof shown), p->out);
    if (highlight && p->color) fputs("\033[0m", p->out);
    fputc('\n', p->out);
    fflush(p->out);
}
