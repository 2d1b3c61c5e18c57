package kube

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// All keys are ECDSA P-256: quick to generate, and accepted by every
// component, service-account signing included (ES256).

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a certificate is valid at once even
	// if clocks disagree a little.
	clockSkew = time.Hour
)

// keyPair is a certificate and its private key.
type keyPair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// leafSpec says what a leaf certificate is for.
type leafSpec struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Server       bool // serverAuth; otherwise clientAuth
}

// servingSpec is the apiserver's serving certificate: every name a client
// inside or outside the cluster may use for it.
func servingSpec(c Config) leafSpec {
	names := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc." + c.ClusterDomain, "localhost"}
	ips := []net.IP{
		net.IP(c.Address.AsSlice()),
		net.IPv4(127, 0, 0, 1).To4(),
		net.IP(c.kubernetesServiceIP().AsSlice()),
	}
	return leafSpec{CommonName: "kube-apiserver", DNSNames: names, IPs: ips, Server: true}
}

// adminSpec is the admin's client certificate: system:masters bypasses
// authorization, as kubeadm's admin.conf does.
func adminSpec() leafSpec {
	return leafSpec{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}}
}

// controllerManagerSpec is kube-controller-manager's client certificate.
// RBAC's bootstrap policy grants the user system:kube-controller-manager
// exactly what it needs, so it does not run as a superuser.
func controllerManagerSpec() leafSpec {
	return leafSpec{CommonName: "system:kube-controller-manager"}
}

// schedulerSpec is kube-scheduler's client certificate; like the
// controller manager's, its user has a bootstrap RBAC role.
func schedulerSpec() leafSpec {
	return leafSpec{CommonName: "system:kube-scheduler"}
}

// kubeletClientSpec is the certificate kube-apiserver presents to kubelets
// (exec, logs, port-forward). The kubelets authorize it by asking the API
// server (Webhook), which lets system:masters do anything.
func kubeletClientSpec() leafSpec {
	return leafSpec{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}
}

// nodeSpec is a kubelet's client certificate: the identity the Node
// authorizer and the NodeRestriction admission plugin know.
func nodeSpec(node string) leafSpec {
	return leafSpec{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}}
}

// newCA makes a self-signed CA.
func newCA(name string, now time.Time) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("failed to generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return keyPair{}, fmt.Errorf("failed to create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, fmt.Errorf("failed to parse CA certificate: %w", err)
	}
	return keyPair{Cert: cert, Key: key}, nil
}

// issue signs a leaf certificate for spec with ca.
func issue(ca keyPair, spec leafSpec, now time.Time) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("failed to generate key for %s: %w", spec.CommonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return keyPair{}, err
	}
	usage := x509.ExtKeyUsageClientAuth
	if spec.Server {
		usage = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return keyPair{}, fmt.Errorf("failed to sign certificate for %s: %w", spec.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, fmt.Errorf("failed to parse certificate for %s: %w", spec.CommonName, err)
	}
	return keyPair{Cert: cert, Key: key}, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("failed to generate serial number: %w", err)
	}
	return s, nil
}

// certPEM and keyPEM encode for files.
func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("failed to encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func publicKeyPEM(k crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("failed to encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// writeKeyPair writes cert (0644) and key (0600).
func writeKeyPair(kp keyPair, certFile, keyFile string) error {
	kb, err := keyPEM(kp.Key)
	if err != nil {
		return err
	}
	if err := writeFile(keyFile, kb, 0o600); err != nil {
		return err
	}
	return writeFile(certFile, certPEM(kp.Cert), 0o644)
}

// readKeyPair reads what writeKeyPair wrote; fs.ErrNotExist when either
// file is missing.
func readKeyPair(certFile, keyFile string) (keyPair, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return keyPair{}, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return keyPair{}, err
	}
	cblock, _ := pem.Decode(cb)
	if cblock == nil || cblock.Type != "CERTIFICATE" {
		return keyPair{}, fmt.Errorf("%s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return keyPair{}, fmt.Errorf("failed to parse %s: %w", certFile, err)
	}
	key, err := readECKey(kb)
	if err != nil {
		return keyPair{}, fmt.Errorf("failed to parse %s: %w", keyFile, err)
	}
	return keyPair{Cert: cert, Key: key}, nil
}

func readECKey(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "EC PRIVATE KEY" {
		return nil, errors.New("no PEM EC private key")
	}
	return x509.ParseECPrivateKey(block.Bytes)
}

// pki is every certificate and key a control plane needs.
type pki struct {
	CA, Serving, Admin, ControllerManager keyPair
	Scheduler, KubeletClient              keyPair
	SAKey                                 *ecdsa.PrivateKey
}

// ensurePKI loads the CA and service-account key from p (creating them the
// first time) and issues fresh leaf certificates, writing everything to p.
func ensurePKI(c Config, p paths, now time.Time) (pki, error) {
	if err := os.MkdirAll(p.pki, 0o700); err != nil {
		return pki{}, fmt.Errorf("failed to create %s: %w", p.pki, err)
	}
	var out pki
	ca, err := readKeyPair(p.caCert, p.caKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ca, err = newCA("weft-lab-kubernetes-ca", now); err != nil {
			return pki{}, err
		}
		if err := writeKeyPair(ca, p.caCert, p.caKey); err != nil {
			return pki{}, err
		}
	case err != nil:
		return pki{}, fmt.Errorf("failed to load CA: %w", err)
	}
	out.CA = ca

	kb, err := os.ReadFile(p.saKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if out.SAKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return pki{}, fmt.Errorf("failed to generate service-account key: %w", err)
		}
		if kb, err = keyPEM(out.SAKey); err != nil {
			return pki{}, err
		}
		if err := writeFile(p.saKey, kb, 0o600); err != nil {
			return pki{}, err
		}
	case err != nil:
		return pki{}, fmt.Errorf("failed to read service-account key: %w", err)
	default:
		if out.SAKey, err = readECKey(kb); err != nil {
			return pki{}, fmt.Errorf("failed to parse %s: %w", p.saKey, err)
		}
	}
	pub, err := publicKeyPEM(&out.SAKey.PublicKey)
	if err != nil {
		return pki{}, err
	}
	if err := writeFile(p.saPub, pub, 0o644); err != nil {
		return pki{}, err
	}

	for _, leaf := range []struct {
		spec      leafSpec
		dst       *keyPair
		cert, key string
	}{
		{servingSpec(c), &out.Serving, p.servingCert, p.servingKey},
		{adminSpec(), &out.Admin, p.adminCert, p.adminKey},
		{controllerManagerSpec(), &out.ControllerManager, p.kcmCert, p.kcmKey},
		{schedulerSpec(), &out.Scheduler, p.schedCert, p.schedKey},
		{kubeletClientSpec(), &out.KubeletClient, p.kubeletClientCert, p.kubeletClientKey},
	} {
		kp, err := issue(ca, leaf.spec, now)
		if err != nil {
			return pki{}, err
		}
		if err := writeKeyPair(kp, leaf.cert, leaf.key); err != nil {
			return pki{}, err
		}
		*leaf.dst = kp
	}
	return out, nil
}

// writeFile writes atomically (temp file and rename) with mode perm.
func writeFile(name string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", name, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to chmod %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("failed to write %s: %w", name, err)
	}
	return nil
}
