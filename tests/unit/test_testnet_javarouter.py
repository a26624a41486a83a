"""A Java router's rendered configuration and command line (no processes)."""

from __future__ import annotations

from pathlib import Path

from testnet import javarouter
from testnet.router import EEPSITE_LOCAL_PORT, NETID, RouterSpec

SPEC = RouterSpec(6, False, Path("/state/j6"), "java", "2.7.0")


def props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v for k, v in pairs if not k.startswith("#")}


def test_java_router_gets_its_own_name_address_and_ports():
    assert (SPEC.name, SPEC.ygg_address) == ("j6", "200::7")
    i2pd = RouterSpec(5, False, Path("/state/r5"))
    ports = {SPEC.port(s) for s in ("ntcp2", "i2cp", "sam", "sam_udp", "http_proxy", "relay")}
    others = {i2pd.port(s) for s in ("ntcp2", "i2cp", "sam", "webconsole", "http_proxy")}
    assert len(ports) == 6 and not ports & others and i2pd.port("sam") - 1 not in ports


def test_router_config_is_private_ntcp2_only_with_zero_hop_inbound():
    conf = props(javarouter.render_router_config(SPEC, tunnel_length=1))
    assert conf["router.networkID"] == str(NETID) != "2"
    assert conf["router.reseedDisable"] == "true" and conf["time.disabled"] == "true"
    assert conf["i2np.udp.enable"] == "false" and conf["i2np.upnp.enable"] == "false"
    assert (conf["i2np.ntcp.hostname"], conf["i2np.ntcp.port"]) == ("200::7", "20006")
    assert conf["i2np.ntcp.ipv6"] == "only" and conf["i2np.ntcp.autoip"] == "false"
    assert conf["i2np.allowLocal"] == "true"
    assert (conf["i2cp.hostname"], conf["i2cp.port"]) == ("127.0.0.1", "21006")
    assert conf["router.inboundPool.length"] == "0"  # i2pd routers lack the R cap Java wants
    assert conf["router.outboundPool.length"] == "1"
    assert "i2np.ntcp2.sp" not in conf  # the NTCP2 key is Java's, written on first start


def test_sam_and_tunnels_start_on_boot_from_clients_config_d():
    files = javarouter.render_clients(SPEC, tunnel_length=1)
    sam = props(files["00-net.i2p.sam.SAMBridge-clients.config"])
    assert sam["clientApp.0.onBoot"] == "true"
    args = sam["clientApp.0.args"]
    assert args.startswith("sam.keys 127.0.0.1 22006 ")
    for option in ("i2cp.tcp.port=21006", "sam.udp.port=23006", "inbound.length=0",
                   "outbound.length=1"):  # fmt: skip
        assert f" {option}" in args
    tunnels = props(files["01-net.i2p.i2ptunnel.TunnelControllerGroup-clients.config"])
    assert tunnels["clientApp.0.onBoot"] == "true"
    assert tunnels["clientApp.0.args"] == "i2ptunnel.config"


def test_i2ptunnel_has_an_http_proxy_and_the_demo_site_server():
    conf = props(javarouter.render_i2ptunnel_config(SPEC, tunnel_length=1))
    assert conf["tunnel.0.type"] == "httpclient"
    assert (conf["tunnel.0.interface"], conf["tunnel.0.listenPort"]) == ("127.0.0.1", "25006")
    assert conf["tunnel.0.option.i2cp.delayOpen"] == "true"  # else "No manager yet" for 20 s
    assert conf["tunnel.0.proxyList"] == "false.i2p"  # no outproxy: nothing leaves
    assert conf["tunnel.1.type"] == "httpserver"
    assert conf["tunnel.1.targetPort"] == str(EEPSITE_LOCAL_PORT)
    assert conf["tunnel.1.privKeyFile"] == javarouter.EEPSITE_KEYS
    for n in (0, 1):
        assert conf[f"tunnel.{n}.i2cpPort"] == "21006"
        assert conf[f"tunnel.{n}.option.inbound.length"] == "0"
        assert conf[f"tunnel.{n}.option.i2cp.leaseSetEncType"] == "4,0"


def test_write_config_and_java_argv(tmp_path):
    spec = RouterSpec(6, False, tmp_path / "j6", "java", "2.7.0")
    javarouter.write_config(spec, tunnel_length=1)
    names = sorted(p.relative_to(spec.data_dir).as_posix() for p in spec.data_dir.rglob("*"))
    assert "router.config" in names and "i2ptunnel.config" in names
    assert "clients.config" not in names  # it would be migrated and lose onBoot
    dist = tmp_path / "dist"
    (dist / "lib").mkdir(parents=True)
    for jar in ("router.jar", "i2p.jar"):
        (dist / "lib" / jar).write_bytes(b"")
    argv = javarouter.java_argv("/usr/bin/java", dist, spec)
    assert argv[:3] == ["/usr/bin/java", "-Xmx192m", "-XX:+UseSerialGC"]
    assert f"-Di2p.dir.config={spec.data_dir}" in argv  # the state dir marks the process ours
    assert argv[-1] == "net.i2p.router.RouterLaunch"
    assert argv[argv.index("-cp") + 1] == f"{dist}/lib/i2p.jar:{dist}/lib/router.jar"


def test_established_connections_of_a_process(tmp_path):
    import os
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    try:
        assert javarouter.established_peer_connections(os.getpid(), {port}) == 2
        assert javarouter.established_peer_connections(os.getpid(), {1}) == 0
    finally:
        for s in (client, accepted, server):
            s.close()
