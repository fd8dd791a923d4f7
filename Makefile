# relocfs: live relocation of VM homes between datastores, over FUSE.
VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc

CC        ?= cc
PKGS      := fuse3 libconfig libxxhash liburing
OPT       ?= -O2 -g
WARN      := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CFLAGS    += -std=gnu11 $(OPT) $(WARN) -Iinclude -pthread \
             -DRELOCFS_VERSION=\"$(VERSION)\" -DFUSE_USE_VERSION=312 \
             -DRELOCFS_SYSCONFDIR=\"$(SYSCONFDIR)\" \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    += -pthread -lm $(shell pkg-config --libs $(PKGS) 2>/dev/null)
SAN       := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

B         := build
LIB_SRC   := $(filter-out src/relocctl.c,$(wildcard src/*.c)) $(filter-out fs/main.c,$(wildcard fs/*.c))
LIB_OBJ   := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRC))
SAN_OBJ   := $(patsubst %.c,$(B)/obj-san/%.o,$(LIB_SRC))
HEADERS   := $(wildcard include/relocfs/*.h)
UNIT_SRC  := $(wildcard test/unit/test_*.c)
UNIT      := $(patsubst test/unit/%.c,$(B)/unit/%,$(UNIT_SRC))
UNIT_SAN  := $(patsubst test/unit/%.c,$(B)/unit-san/%,$(UNIT_SRC))

.SECONDARY: $(LIB_OBJ) $(SAN_OBJ)
.PHONY: all install uninstall check unit testtools deps demo bench lint clean
all: $(B)/relocfs $(B)/relocctl

$(B)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(B)/obj-san/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS) $(SAN) -c -o $@ $<

$(B)/relocfs: $(B)/obj/fs/main.o $(LIB_OBJ)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/relocctl: $(B)/obj/src/relocctl.o $(LIB_OBJ)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/unit/%: test/unit/%.c test/unit/unit.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS) -Itest/unit -o $@ $< $(LIB_OBJ) $(LDLIBS)

$(B)/unit-san/%: test/unit/%.c test/unit/unit.h $(SAN_OBJ)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS) $(SAN) -Itest/unit -o $@ $< $(SAN_OBJ) $(LDLIBS)

unit: $(UNIT) $(UNIT_SAN)

# Test-only programs: faultfs, a FUSE layer that holds writes until fsync
# (a power cut drops them) and fails the destination on demand.
testtools: $(B)/faultfs

$(B)/faultfs: test/tools/faultfs.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# Installs what is missing (Debian packages, as root), builds, runs every
# test and prints "N passed, N failed, N skipped".
check: deps
	$(MAKE) all unit testtools
	$(MAKE) lint
	test/run-all

deps:
	@src/tools/deps.sh

# Measures relocfs against native, bindfs, mergerfs, cp -a and rsync -a and
# prints ratios (test/bench/run; sizes and run counts in its header).
bench:
	@RELOCFS_BENCH=1 src/tools/deps.sh
	$(MAKE) all
	test/bench/run

demo: deps
	$(MAKE) all
	src/tools/demo.sh

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	           $(DESTDIR)$(SYSCONFDIR)/relocfs
	install -m 0755 $(B)/relocfs $(B)/relocctl $(DESTDIR)$(SBINDIR)/
	install -m 0644 $(wildcard doc/*.8) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(wildcard doc/*.5) $(DESTDIR)$(MANDIR)/man5/
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/relocfs/relocfs.conf ]; then \
	    echo "keeping $(DESTDIR)$(SYSCONFDIR)/relocfs/relocfs.conf"; \
	else install -m 0644 conf/relocfs.conf $(DESTDIR)$(SYSCONFDIR)/relocfs/relocfs.conf; fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/relocfs $(DESTDIR)$(SBINDIR)/relocctl \
	      $(DESTDIR)$(MANDIR)/man8/relocfs.8 $(DESTDIR)$(MANDIR)/man8/relocctl.8 \
	      $(DESTDIR)$(MANDIR)/man5/relocfs.conf.5

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --inline-suppr -Iinclude $(shell pkg-config --cflags-only-I $(PKGS)) \
	    -DRELOCFS_VERSION=\"$(VERSION)\" -DFUSE_USE_VERSION=312 src fs
	clang-tidy --quiet -checks='-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier' \
	    --warnings-as-errors='*' src/*.c fs/*.c -- -std=gnu11 -Iinclude \
	    -DRELOCFS_VERSION=\"$(VERSION)\" -DFUSE_USE_VERSION=312 $(shell pkg-config --cflags $(PKGS))

clean:
	rm -rf $(B)
