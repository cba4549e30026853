#!/bin/sh
# DEVELOPMENT ONLY: the vault password of inventory/local, published in the README. It protects nothing but the
# throwaway containers' database passwords, which only this machine can reach. The AWS inventory's vault has a
# password of your own (--ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE); never reuse this one.
echo imgsieve-local-development
