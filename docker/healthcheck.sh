#!/bin/bash
# The HEALTHCHECK of berth's container image (Dockerfile): GET /readyz over
# plain HTTP; healthy (exit 0) on 200 only. berth answers /readyz on its
# metrics listener, and on the main listeners when health.on_main is true, as
# the image sets it (BERTH_HEALTH_ON_MAIN).
#
# The address is taken from the variables berth itself reads: the metrics
# listener when BERTH_METRICS_LISTEN is set (plain HTTP even when the main
# listeners use TLS), else the first address of BERTH_LISTEN, else berth's
# default ":5000". A listener moved in a mounted config file is not seen here:
# move it with the variable instead, or give the container another health check.
# bash's /dev/tcp, so the image needs no HTTP client.
set -u
addr=${BERTH_METRICS_LISTEN:-${BERTH_LISTEN:-:5000}}
addr=${addr%%,*}
addr=${addr//[[:space:]]/}
port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
case $host in
"" | 0.0.0.0) host=127.0.0.1 ;;
::) host=::1 ;;
esac
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
read -r -t 5 _ code _ <&3 || exit 1
[ "$code" = 200 ]
