"""Network security: the S3 gateway endpoint, one network ACL per subnet tier, four security groups.

Network ACLs are stateless: every flow needs a rule for its requests in one direction and another for
the replies in the other, which go to the client's ephemeral port (1024-65535 covers Linux clients, the
NAT gateway and the ALB). Each tier allows only the flows it takes part in:

    internet -> ALB :80 (public)          ALB -> app :80            app -> data :27017
    operator -> bastion :22               bastion -> app, data :22
    app, data -> NAT (public) -> internet :80/:443 (dnf, MongoDB repo, SSM, CodeDeploy, CloudWatch, S3)

S3 traffic through the gateway endpoint still passes the NACLs, and a NACL cannot name the S3 prefix
list, so HTTPS out is open to 0.0.0.0/0 (the security groups and the route tables decide the rest).
Traffic to the VPC resolver, instance metadata and time sync is never filtered by NACLs.

Security groups are stateful and say who may open a connection to what. Their egress stays the AWS
default (all traffic out): the NACLs above are where outbound traffic is restricted.
"""

from __future__ import annotations

from cdpoc.model import Resource
from cdpoc.spec import Ref
from cdpoc.spec import declare as declare_resource
from cdpoc.stack.names import StackNames
from cdpoc.stack.specs.security import NaclEntry, NetworkAclSpec, SecurityGroupSpec, SgRule, VpcEndpointSpec

TCP = "6"  # NACL entries name protocols by number
ANYWHERE = "0.0.0.0/0"
HTTP = (80, 80)
HTTPS = (443, 443)
SSH = (22, 22)
MONGODB = (27017, 27017)
EPHEMERAL = (1024, 65535)

PRIVATE_ROUTE_TABLES = ("rt.private.a", "rt.private.b")
VPC = Ref("vpc")


def nacl_rule(number: int, ports: tuple[int, int], cidr: str, action: str = "allow") -> NaclEntry:
    return NaclEntry(number, TCP, action, cidr, ports)


def nacl_rules(first: int, ports: tuple[int, int], cidrs: tuple[str, ...]) -> list[NaclEntry]:
    """The same allowance for several networks, numbered first, first + 1, ..."""
    return [nacl_rule(first + i, ports, cidr) for i, cidr in enumerate(cidrs)]


def sg_rule(ports: tuple[int, int], description: str, *, cidr: str = "", group: str = "") -> SgRule:
    """One ingress allowance from a CIDR block or from the members of another group (by logical key)."""
    return SgRule("tcp", ports, description, cidr=cidr, group=Ref(group) if group else None)


# The rule every new VPC security group starts with; kept on purpose (see the module docstring).
ALL_OUTBOUND = (SgRule("-1", None, cidr=ANYWHERE),)


def declare(names: StackNames) -> list[Resource]:
    return [s3_endpoint(names), *network_acls(names), *security_groups(names)]


def s3_endpoint(names: StackNames) -> Resource:
    # Only the private subnets need it: their S3 traffic (artifacts, CodeDeploy agent, dnf mirrors)
    # then skips the NAT gateway and its per-GB charge.
    return declare_resource(
        "endpoint.s3",
        f"{names.name}-s3-endpoint",
        VpcEndpointSpec(VPC, f"com.amazonaws.{names.region}.s3", tuple(Ref(key) for key in PRIVATE_ROUTE_TABLES)),
    )


def network_acls(names: StackNames) -> list[Resource]:
    net = names.settings.network
    public, app, data = net.subnets("public"), net.subnets("app"), net.subnets("data")
    bastion = (net.bastion_subnet,)
    operator = (names.settings.operator.ssh_cidr,) if names.settings.operator.ssh_cidr else ()
    tiers = {
        "public": (
            ("subnet.public.a", "subnet.public.b"),
            [
                nacl_rule(100, HTTP, ANYWHERE),  # clients to the ALB; private subnets' HTTP to the NAT
                nacl_rule(110, HTTPS, net.vpc_cidr),  # private subnets' HTTPS to the NAT
                nacl_rule(120, EPHEMERAL, ANYWHERE),  # replies to the NAT (internet) and the ALB (app)
            ],
            [
                nacl_rule(100, HTTP, ANYWHERE),  # ALB to the app; the NAT forwarding HTTP
                nacl_rule(110, HTTPS, ANYWHERE),  # the NAT forwarding HTTPS
                nacl_rule(120, EPHEMERAL, ANYWHERE),  # replies to clients (ALB) and private instances (NAT)
            ],
        ),
        "app": (
            ("subnet.app.a", "subnet.app.b"),
            [
                *nacl_rules(100, HTTP, public),  # the ALB's nodes live in the public subnets
                *nacl_rules(110, SSH, bastion),
                nacl_rule(120, EPHEMERAL, ANYWHERE),  # replies from the internet (via NAT), S3, MongoDB
            ],
            [
                nacl_rule(100, HTTP, ANYWHERE),  # dnf and installers, via the NAT
                nacl_rule(110, HTTPS, ANYWHERE),  # AWS APIs, S3 via the endpoint
                *nacl_rules(120, MONGODB, data),
                *nacl_rules(130, EPHEMERAL, public),  # replies to the ALB
                *nacl_rules(140, EPHEMERAL, bastion),  # replies to SSH sessions
            ],
        ),
        "data": (
            ("subnet.data.a", "subnet.data.b"),
            [
                *nacl_rules(100, MONGODB, app),
                *nacl_rules(110, SSH, bastion),
                # 27017 lies inside the ephemeral range: without this deny, rule 130 (replies) would open
                # MongoDB to every network. Rules are evaluated lowest number first.
                nacl_rule(120, MONGODB, ANYWHERE, action="deny"),
                nacl_rule(130, EPHEMERAL, ANYWHERE),  # replies from the internet, via the NAT
            ],
            [
                nacl_rule(100, HTTP, ANYWHERE),  # dnf and the MongoDB repository, via the NAT
                nacl_rule(110, HTTPS, ANYWHERE),  # SSM, CloudWatch, S3 via the endpoint
                *nacl_rules(120, EPHEMERAL, app),  # MongoDB's replies
                *nacl_rules(130, EPHEMERAL, bastion),  # replies to SSH sessions
            ],
        ),
        "bastion": (
            ("subnet.bastion",),
            [
                *nacl_rules(100, SSH, operator),  # none when operator.ssh_cidr is empty
                nacl_rule(110, EPHEMERAL, ANYWHERE),  # replies to its SSH sessions inward and to its updates
            ],
            [
                *nacl_rules(100, SSH, app + data),
                nacl_rule(110, HTTP, ANYWHERE),  # updates, straight through the internet gateway
                nacl_rule(120, HTTPS, ANYWHERE),
                *nacl_rules(130, EPHEMERAL, operator),  # replies to the operator's SSH session
            ],
        ),
    }
    return [
        declare_resource(
            f"nacl.{tier}",
            f"{names.name}-{tier}-nacl",
            NetworkAclSpec(VPC, tuple(Ref(key) for key in subnets), tuple(ingress), tuple(egress)),
        )
        for tier, (subnets, ingress, egress) in tiers.items()
    ]


def security_groups(names: StackNames) -> list[Resource]:
    ssh_cidr = names.settings.operator.ssh_cidr

    def group(role: str, description: str, ingress: list[SgRule]) -> Resource:
        return declare_resource(
            f"sg.{role}",
            f"{names.name}-{role}-sg",
            SecurityGroupSpec(VPC, f"cdpoc {names.name}: {description}", tuple(ingress), ALL_OUTBOUND),
        )

    return [
        group("alb", "load balancer, HTTP from anywhere", [sg_rule(HTTP, "HTTP from anywhere", cidr=ANYWHERE)]),
        group(
            "bastion",
            "bastion, SSH from the operator only",
            [sg_rule(SSH, "SSH from the operator", cidr=ssh_cidr)] if ssh_cidr else [],
        ),
        group(
            "app",
            "application instances",
            [
                sg_rule(HTTP, "HTTP from the load balancer", group="sg.alb"),
                sg_rule(SSH, "SSH from the bastion", group="sg.bastion"),
            ],
        ),
        group(
            "data",
            "MongoDB",
            [
                sg_rule(MONGODB, "MongoDB from the application", group="sg.app"),
                sg_rule(SSH, "SSH from the bastion", group="sg.bastion"),
            ],
        ),
    ]
