/* SPDX-License-Identifier: MIT */
/* version.c - vmo_version(): the version this library was built as (from
 * CMakeLists.txt's project(VERSION), through the generated vmo_version.h). */
#include <vmo.h>

VMO_API const char *vmo_version(void)
{
	return VMO_VERSION_STRING;
}
