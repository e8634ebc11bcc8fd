# packaging/: what "make install" lays out besides programs, man pages and
# docs (issue 14): the default configurations, the state directory, and
# with --with-systemd the units and the sysusers.d entry.
dgconfdir = $(sysconfdir)/deltagate
dgstatedir = $(localstatedir)/lib/deltagate
# the examples name the FHS paths; an install names its own
DG_PATHS_SED = sed -e 's|/var/lib/deltagate|$(dgstatedir)|g' \
	-e 's|/etc/deltagate|$(dgconfdir)|g' -e 's|{{sbindir}}|$(sbindir)|g' \
	-e 's|{{sysconfdir}}|$(sysconfdir)|g' -e 's|{{dgstatedir}}|$(dgstatedir)|g'
DG_CONFS = deltagated deltagate-shadowd

# An existing configuration is the administrator's: never overwritten.
install-data-hook: install-dg-config
install-dg-config:
	$(MKDIR_P) '$(DESTDIR)$(dgconfdir)' '$(DESTDIR)$(dgstatedir)'
	@for f in $(DG_CONFS); do \
	  dst='$(DESTDIR)$(dgconfdir)'/$$f.conf; \
	  if test -e "$$dst"; then \
	    echo " keeping $$dst"; \
	  else \
	    echo " installing $$dst"; \
	    $(DG_PATHS_SED) '$(srcdir)/examples/'$$f.conf > "$$dst.tmp" && \
	    chmod 644 "$$dst.tmp" && mv "$$dst.tmp" "$$dst" || exit 1; \
	  fi; \
	done
	chmod 750 '$(DESTDIR)$(dgstatedir)'

# A configuration is removed only as installed; an edited one stays.
uninstall-hook: uninstall-dg-config
uninstall-dg-config:
	@for f in $(DG_CONFS); do \
	  dst='$(DESTDIR)$(dgconfdir)'/$$f.conf; \
	  test -e "$$dst" || continue; \
	  if $(DG_PATHS_SED) '$(srcdir)/examples/'$$f.conf | cmp -s - "$$dst"; then \
	    echo " rm -f $$dst"; rm -f "$$dst"; \
	  else \
	    echo " keeping $$dst (changed since it was installed)"; \
	  fi; \
	done
	-rmdir '$(DESTDIR)$(dgconfdir)' '$(DESTDIR)$(dgstatedir)' 2>/dev/null
.PHONY: install-dg-config uninstall-dg-config

# --- systemd (--with-systemd)
DG_UNITS = packaging/systemd/deltagated.service packaging/systemd/deltagate-shadowd.service
EXTRA_DIST += $(DG_UNITS:=.in) packaging/systemd/deltagate.sysusers.in
if WITH_SYSTEMD
systemdsystemunit_DATA = $(DG_UNITS)
sysusers_DATA = packaging/systemd/deltagate.conf
CLEANFILES += $(DG_UNITS) packaging/systemd/deltagate.conf
endif
DG_GEN = $(AM_V_GEN)$(MKDIR_P) packaging/systemd && $(DG_PATHS_SED)
packaging/systemd/deltagated.service: $(srcdir)/packaging/systemd/deltagated.service.in Makefile
	$(DG_GEN) $(srcdir)/packaging/systemd/deltagated.service.in > $@.tmp && mv $@.tmp $@
packaging/systemd/deltagate-shadowd.service: $(srcdir)/packaging/systemd/deltagate-shadowd.service.in Makefile
	$(DG_GEN) $(srcdir)/packaging/systemd/deltagate-shadowd.service.in > $@.tmp && mv $@.tmp $@
packaging/systemd/deltagate.conf: $(srcdir)/packaging/systemd/deltagate.sysusers.in Makefile
	$(DG_GEN) $(srcdir)/packaging/systemd/deltagate.sysusers.in > $@.tmp && mv $@.tmp $@

# distcheck installs under its own prefix, the units too; the suite needs
# the fault points (scripts/check builds with them too)
AM_DISTCHECK_CONFIGURE_FLAGS = --with-systemd --enable-fault-injection \
	--with-systemdsystemunitdir='$$(prefix)/lib/systemd/system' \
	--with-sysusersdir='$$(prefix)/lib/sysusers.d'

# --- OpenWrt: packages for the feed (built by OpenWrt's SDK, not here)
EXTRA_DIST += packaging/openwrt/deltagate/Makefile \
	packaging/openwrt/deltagate/files/deltagated.init \
	packaging/openwrt/deltagate/files/deltagate.config \
	packaging/openwrt/paho-mqtt-c/Makefile
