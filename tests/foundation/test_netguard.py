import pytest

from services.netguard import ForbiddenSource, check_public_url


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:6379/",
    "http://localhost/x.mp4",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/a.mp4",
    "http://[::1]/a.mp4",
    "http://[::ffff:192.168.1.1]/a.mp4",
    "ftp://example.com/a.mp4",
    "http:///nohost",
])
def test_internal_or_odd_sources_are_refused(uri):
    with pytest.raises(ForbiddenSource):
        check_public_url(uri)


def test_public_addresses_pass_and_private_ones_can_be_allowed():
    check_public_url("http://93.184.215.14/video.mp4")  # a literal public address needs no DNS
    check_public_url("http://127.0.0.1/x.mp4", allow_private=True)
