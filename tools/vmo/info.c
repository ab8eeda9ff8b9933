/* SPDX-License-Identifier: MIT */
/* vmo info: what the running kernel offers, or why userfaultfd is not there. */
#include "cli.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

/* What shmem's transparent huge pages setting lets a memfd use: *on, and the
 * setting's word into knob (""): false if there are none for shmem. */
static bool large_folios(char *knob, size_t len, bool *on)
{
	/* A memfd's large folios follow shmem's global setting (docs/api.md,
	 * Large folios and sequential fills). */
	char line[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
	if (f) {
		if (!fgets(line, sizeof line, f))
			line[0] = 0;
		fclose(f);
	}
	char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
	knob[0] = 0;
	*on = false;
	if (!a || !b)
		return false;
	*b = 0;
	a++;
	snprintf(knob, len, "%s", a);
	*on = !strcmp(a, "always") || !strcmp(a, "within_size") || !strcmp(a, "force");
	return true;
}

/* --json: the same facts as one object. */
static int info_json(void)
{
	struct json j;
	struct utsname u;
	bool have_uname = uname(&u) == 0;
	json_begin(&j, stdout);
	json_str(&j, "libvmo", vmo_version());
	json_object(&j, "kernel");
	json_str(&j, "sysname", have_uname ? u.sysname : NULL);
	json_str(&j, "release", have_uname ? u.release : NULL);
	json_str(&j, "machine", have_uname ? u.machine : NULL);
	json_end(&j);
	struct vmo_engine *eng;
	int rc = vmo_engine_create(NULL, &eng), ret = 0;
	json_object(&j, "userfaultfd");
	json_bool(&j, "available", rc == 0);
	if (rc) {
		const char *d = vmo_last_error_detail();
		json_str(&j, "error", vmo_strerror(rc));
		json_str(&j, "detail", d && *d ? d : NULL);
		json_end(&j);
		json_finish(&j);
		return 1;
	}
	json_end(&j);
	unsigned feat = vmo_engine_features(eng);
	json_features(&j, "features", feat);
	/* true: a system call meeting an unsupplied page waits (a full userfaultfd) */
	json_bool(&j, "syscalls_wait", feat & VMO_FEAT_KERNEL_FAULTS);
	const char *dis = getenv("VMO_DISABLE");
	json_str(&j, "vmo_disable", dis && *dis ? dis : NULL);
	json_object(&j, "page_sizes");
	json_u64(&j, "min", 4096);
	json_u64(&j, "max", 2u << 20);
	json_end(&j);
	char knob[64];
	bool on;
	json_object(&j, "large_folios");
	if (large_folios(knob, sizeof knob, &on)) {
		json_bool(&j, "enabled", on);
		json_str(&j, "shmem_enabled", knob);
	} else {
		json_bool(&j, "enabled", false);
		json_str(&j, "shmem_enabled", NULL);
	}
	json_end(&j);
	if ((rc = vmo_engine_destroy(eng)))
		ret = fail("vmo_engine_destroy", rc);
	json_finish(&j);
	return ret;
}

static int cmd_info(int argc, char **argv)
{
	const char *pos[1];
	int npos;
	bool json = false;
	const struct opt opts[] = { { "--json", false, NULL, &json }, { NULL, false, NULL, NULL } };
	int rc = parse_opts(argc, argv, opts, pos, 0, &npos);
	if (rc)
		return rc;
	if (json)
		return info_json();
	struct utsname u;
	printf("libvmo %s", vmo_version());
	if (uname(&u) == 0)
		printf(" on %s %s %s", u.sysname, u.release, u.machine);
	printf("\n");
	struct vmo_engine *eng;
	if ((rc = vmo_engine_create(NULL, &eng))) {
		printf("userfaultfd: NOT AVAILABLE (%s)\n", vmo_strerror(rc));
		const char *d = vmo_last_error_detail();
		if (d && *d)
			printf("%s\n", d);
		return 1;
	}
	unsigned feat = vmo_engine_features(eng);
	printf("userfaultfd: available\n");
	printf("kernel features:\n");
	for (size_t i = 0; i < nfeatures; i++)
		printf("  %-3s %-13s %s\n", feat & features[i].bit ? "yes" : "no", features[i].name,
		       features[i].what);
	/* How the userfaultfd was had, as it matters to a program: whether a
	 * system call that meets an unsupplied page waits or fails. */
	if (feat & VMO_FEAT_KERNEL_FAULTS)
		printf("system calls: one that touches a page not yet supplied (read(2) into a mapping, "
		       "O_DIRECT, io_uring) waits for the pager, as a touch does (a full userfaultfd)\n");
	else
		printf("system calls: one that touches a page not yet supplied FAILS with EFAULT (a user-mode-only "
		       "userfaultfd: this user may not have a full one). Touch such pages first, or let "
		       "system calls wait: give this user /dev/userfaultfd (a group or an ACL), or sysctl "
		       "vm.unprivileged_userfaultfd=1, or CAP_SYS_PTRACE\n");
	const char *dis = getenv("VMO_DISABLE");
	if (dis && *dis)
		printf("VMO_DISABLE=%s: those mechanisms are treated as missing (fallbacks in use)\n", dis);
	printf("page sizes: 4 KiB .. 2 MiB (powers of two)\n");
	char knob[64];
	bool on;
	if (large_folios(knob, sizeof knob, &on))
		printf("large folios: %s (shmem_enabled %s)%s\n", on ? "yes" : "no", knob,
		       on ? ": 2 MiB blocks of sequential fills are written into the object's memory"
			  : "; `within_size` lets sequential fills use 2 MiB folios");
	else
		printf("large folios: no (no transparent huge pages for shmem)\n");
	if ((rc = vmo_engine_destroy(eng)))
		return fail("vmo_engine_destroy", rc);
	return 0;
}

const struct cli_cmd cli_cmd_info = {
	"info", cmd_info, "[--json]",
	"What the running kernel offers vmo (userfaultfd features), or why\n"
	"userfaultfd cannot be used here and how to fix that; exits 1 then.\n"
	"--json: the same as one JSON object on standard output (\"userfaultfd\":\n"
	"{\"available\": ...}, \"features\": {NAME: true|false, ...}, ...).",
};
