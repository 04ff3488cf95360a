#!/bin/sh
exec env -i PATH=/opt/app/bin HOME=/tmp nice -n 10 timeout --signal=TERM 24h app --batch
