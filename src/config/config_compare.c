/* Which config keys a resume may not change: compares the config saved in a checkpoint with the
 * one given now, key by key, through the YAML writer's text of each value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

/* Keys that only change how long, where or how fast the run goes, or what it does about a
 * non-finite step: they may differ on resume. train.batch_size and train.accumulate are compared
 * through the global batch by the trainer (ranks may change). */
static bool may_change_on_resume(const dt_config_key *key) {
    static const char *const free_keys[] = {"data.workers",     "train.epochs",
                                            "train.batch_size", "train.accumulate",
                                            "train.nonfinite",  "train.max_skipped_steps"};
    if (strcmp(key->section, "runtime") == 0 || strcmp(key->section, "output") == 0) return true;
    for (size_t i = 0; i < sizeof free_keys / sizeof free_keys[0]; i++)
        if (strcmp(key->path, free_keys[i]) == 0) return true;
    return false;
}

int dt_config_resume_differences(const dt_config *saved, const dt_config *now, char *out,
                                 size_t size) {
    int count = 0, differing = 0;
    const dt_config_key *keys = dt_config_keys(&count);
    if (size) out[0] = '\0';
    for (int i = 0; i < count; i++) {
        if (may_change_on_resume(&keys[i])) continue;
        char *a = dt_config_key_text(saved, &keys[i]), *b = dt_config_key_text(now, &keys[i]);
        int differs = !a || !b || strcmp(a, b) != 0;
        free(a);
        free(b);
        if (!differs) continue;
        differing++;
        size_t used = strlen(out);
        if (size > used) snprintf(out + used, size - used, "%s%s", used ? ", " : "", keys[i].path);
    }
    return differing;
}
