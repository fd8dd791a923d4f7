/* relocctl: the admin client of a relocfs mount. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#define EXIT_USAGE 2

static void usage(FILE *fp)
{
	fprintf(fp, "usage: relocctl COMMAND [ARGS]\n"
		"       relocctl --help | --version\n");
}

int main(int argc, char *argv[])
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
		printf("relocctl %s\n", RELOCFS_VERSION);
		return 0;
	}
	fprintf(stderr, "relocctl: usage: relocctl COMMAND [ARGS] (relocctl --help for more)\n");
	return EXIT_USAGE;
}
