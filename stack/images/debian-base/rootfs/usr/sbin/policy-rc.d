#!/bin/sh
# Containers have no init system: never start services from package scripts
# (the same file Docker's debootstrap-based images ship).
exit 101
