#!/bin/bash
# run the FastCGI pool and the web server side by side, stop when either ends
php-fpm -F &
nginx -g 'daemon off;' &
wait -n
exit $?
