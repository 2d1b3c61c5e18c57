#!/usr/bin/env bash
# Builds the weft image, brings up the 3-VM kubeadm cluster (Vagrantfile) and
# runs the smoke test on it.
#
#   deploy/vagrant/up.sh          # build, vagrant up, smoke test
#   deploy/vagrant/up.sh down     # vagrant destroy -f
#
# Needs docker (to build the image), vagrant and a provider (VirtualBox or
# libvirt) on the host.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

if [[ ${1:-} == down ]]; then
	vagrant destroy -f
	rm -rf .generated
	exit 0
fi

mkdir -p .generated
docker build -f "$root/deploy/Dockerfile" \
	--build-arg VERSION="$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)" \
	-t weft:dev "$root"
docker save weft:dev -o .generated/weft-image.tar

# Machines that already run keep their old image: import the new one there
# and restart the agents after `vagrant up`.
running=$(vagrant status --machine-readable | awk -F, '$3 == "state" && $4 == "running" {print $2}')
vagrant up
for m in $running; do
	vagrant ssh "$m" -c 'sudo ctr -n k8s.io images import /weft/deploy/vagrant/.generated/weft-image.tar'
done
if [[ -n $running ]]; then
	vagrant ssh cp -c 'sudo kubectl --kubeconfig /etc/kubernetes/admin.conf -n weft-system rollout restart daemonset/weft'
fi
vagrant ssh cp -c 'sudo KUBECTL="kubectl --kubeconfig /etc/kubernetes/admin.conf" /weft/deploy/smoke-test.sh'
echo
echo "kubectl --kubeconfig $here/.generated/admin.conf get pods -A -o wide"
