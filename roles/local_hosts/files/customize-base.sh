#!/bin/sh
# mmdebstrap customize hook: make the minbase tree boot like a Debian cloud VM in a container.
# $1 is the root of the new tree; LOCAL_HOSTS_ADMIN_USER names the login user with passwordless sudo.
set -eu
root="$1"
admin="${LOCAL_HOSTS_ADMIN_USER:?set LOCAL_HOSTS_ADMIN_USER to the login user}"

# Every container must get its own host keys, so none are baked into the image: sshd makes them at first boot.
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/host-keys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT

cat >"$root/etc/ssh/sshd_config.d/50-local-hosts.conf" <<'SSHD'
# Keys only, and no root logins: the same policy as the EC2 images.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
SSHD

chroot "$root" useradd --create-home --shell /bin/bash --groups sudo "$admin"
install -d -m 0700 "$root/home/$admin/.ssh"
chroot "$root" chown "$admin:$admin" "/home/$admin/.ssh"
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$admin" >"$root/etc/sudoers.d/90-$admin"
chmod 0440 "$root/etc/sudoers.d/90-$admin"
