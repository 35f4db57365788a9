"""The Redis cache backend (config.cache): one client per pool, same answers as Django's."""

from __future__ import annotations

from config.cache import PooledRedisCache


def test_the_redis_cache_keeps_one_client_and_reads_what_it_wrote(redis_url: str):
    cache = PooledRedisCache(redis_url, {"KEY_PREFIX": "pooled-cache-test"})
    first = cache._cache.get_client()
    assert cache._cache.get_client("other", write=True) is first
    cache.set("token", {"user": 7}, 30)
    assert cache.get("token") == {"user": 7}
    assert cache.add("token", "again", 30) is False
    cache.delete("token")
    assert cache.get("token") is None
    assert cache._cache.get_client() is first
