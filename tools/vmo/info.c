/* SPDX-License-Identifier: MIT */
/* vmo info: what the running kernel offers, or why userfaultfd is not there. */
#include "cli.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

static int cmd_info(int argc, char **argv)
{
	const char *pos[1];
	int npos;
	const struct opt opts[] = { { NULL, false, NULL, NULL } };
	int rc = parse_opts(argc, argv, opts, pos, 0, &npos);
	if (rc)
		return rc;
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
	/* A memfd's large folios follow shmem's global setting (docs/api.md,
	 * Large folios and sequential fills). */
	char knob[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
	if (f) {
		if (!fgets(knob, sizeof knob, f))
			knob[0] = 0;
		fclose(f);
	}
	char *a = strchr(knob, '['), *b = a ? strchr(a, ']') : NULL;
	if (a && b) {
		*b = 0;
		a++;
		bool on = !strcmp(a, "always") || !strcmp(a, "within_size") || !strcmp(a, "force");
		printf("large folios: %s (shmem_enabled %s)%s\n", on ? "yes" : "no", a,
		       on ? ": 2 MiB blocks of sequential fills are written into the object's memory"
			  : "; `within_size` lets sequential fills use 2 MiB folios");
	} else {
		printf("large folios: no (no transparent huge pages for shmem)\n");
	}
	if ((rc = vmo_engine_destroy(eng)))
		return fail("vmo_engine_destroy", rc);
	return 0;
}

const struct cli_cmd cli_cmd_info = {
	"info", cmd_info, "",
	"What the running kernel offers vmo (userfaultfd features), or why\n"
	"userfaultfd cannot be used here and how to fix that.",
};
