#!/bin/sh
# Containers have no init: package scripts must not start daemons.
exit 101
