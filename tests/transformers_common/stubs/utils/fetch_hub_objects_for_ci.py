"""Stub for the sdist's missing `utils/fetch_hub_objects_for_ci.py`: tvr's tests never fetch hub objects, so a URL
stays what it is (the processor tests that would download media are not run)."""


def url_to_local_path(url, return_url_if_not_found=True):
    return url
