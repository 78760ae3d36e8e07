# Packaging: the tarball holds every tracked file (dist.sh), make install puts
# the binary, example config, man page and systemd unit in place and the unit
# and man page pass their checkers (install.sh), and the help text and berth(1)
# name every command and config key (docs.sh); README claims as tested only
# the clients tests/clients runs (readme.sh).
TESTS += tests/pkg/dist.sh tests/pkg/install.sh tests/pkg/docs.sh tests/pkg/readme.sh
