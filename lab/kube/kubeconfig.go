package kube

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// credentials authenticate a kubeconfig's user: a client certificate or a
// bearer token.
type credentials struct {
	CertPEM, KeyPEM []byte
	Token           string
}

// kubeconfig builds a single-context kubeconfig for server, trusting caPEM,
// with everything embedded so the file stands alone.
func kubeconfig(server string, caPEM []byte, user string, cred credentials) *clientcmdapi.Config {
	const name = "weft-lab"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cred.CertPEM,
		ClientKeyData:         cred.KeyPEM,
		Token:                 cred.Token,
	}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = name
	return cfg
}

// writeKubeconfig writes cfg to file with mode 0600: it holds a secret.
func writeKubeconfig(cfg *clientcmdapi.Config, file string) error {
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("failed to encode kubeconfig %s: %w", file, err)
	}
	return writeFile(file, b, 0o600)
}

// certKubeconfig is a kubeconfig authenticating with kp, signed by ca.
func certKubeconfig(server string, ca, kp keyPair, user string) (*clientcmdapi.Config, error) {
	kb, err := keyPEM(kp.Key)
	if err != nil {
		return nil, err
	}
	return kubeconfig(server, certPEM(ca.Cert), user, credentials{CertPEM: certPEM(kp.Cert), KeyPEM: kb}), nil
}
